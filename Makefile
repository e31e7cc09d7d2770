# `make run` and `make test` each build .venv from nothing; nothing here needs root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MOD_WSGI := $(VENV)/.mod_wsgi
# Apache's build tool (apt package apache2-dev). Without it mod_wsgi cannot be built, and
# tests/test_mod_wsgi.py skips; that is the one test allowed to skip for a missing tool.
APXS := $(or $(shell command -v apxs 2>/dev/null),$(wildcard /usr/bin/apxs))

.PHONY: run test lint bench clean

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
	@echo "apxs not found (apt-get install apache2-dev): skipping mod_wsgi, its test will skip"
endif

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
