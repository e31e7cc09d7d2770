# `make run` and `make test` each build .venv from nothing; only `make deps` needs root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MOD_WSGI := $(VENV)/.mod_wsgi
# Apache's build tool (apt package apache2-dev). Without it mod_wsgi cannot be built.
APXS := $(or $(shell command -v apxs 2>/dev/null),$(wildcard /usr/bin/apxs))
# System packages some tests need: apxs and mod_xsendfile for tests/test_mod_wsgi.py,
# chromium for tests/test_playground.py, redis-server for tests/test_cache_redis.py. Without them those
# tests skip (with CI set in the environment they fail instead), and the run ends with a
# line naming them. `make deps` installs them; .ci/run calls it. One list, in one file.
APT_PACKAGES := $(shell sed -e 's/\#.*//' .ci/apt-packages.txt)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run test lint bench clean deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# mod_wsgi (and its mod_wsgi-express) for the Apache test, built only where apxs exists.
$(MOD_WSGI): $(STAMP)
ifneq ($(APXS),)
	APXS=$(APXS) $(BIN)/pip install --quiet 'mod_wsgi>=5,<7'
	touch $(MOD_WSGI)
else
	@echo "apxs not found: mod_wsgi is not built and its tests will skip (make deps installs apxs)"
endif

deps:
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		$(APT_PACKAGES)

run: $(STAMP)
	$(BIN)/pixfit serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy src

test: lint $(MOD_WSGI)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
