"""Set-up: `make deps` installs the one package list; a run without a tool says so last."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def pytest_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        # CI turns a missing tool into a failure; only the caller's env may set it.
        env={**{key: value for key, value in os.environ.items() if key != "CI"}, **env},
        check=False,
    )


def without_redis_on_path() -> dict[str, str]:
    # Only the venv's own commands: redis-server (in /usr/bin) cannot be found.
    return {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(ROOT / "src")}


def test_a_missing_tool_skips_and_the_last_line_names_it_and_make_deps() -> None:
    result = pytest_run("tests/test_cache_redis.py", env=without_redis_on_path())
    lines = result.stdout.splitlines()
    # The module is skipped whole, so pytest collected no test: exit code 5, not a failure.
    assert result.returncode == 5 and "1 skipped" in lines[-2], result.stdout
    assert lines[-1] == (
        "Not run: tests/test_cache_redis.py (needs redis-server). `make deps` (as root) "
        "installs them from .ci/apt-packages.txt, then run `make test` again."
    ), lines[-3:]


def test_under_ci_a_missing_tool_fails() -> None:
    result = pytest_run("tests/test_cache_redis.py", env={**without_redis_on_path(), "CI": "1"})
    assert result.returncode != 0
    assert "CI must install redis-server" in result.stdout


def test_a_full_run_says_nothing_when_every_tool_is_there(tmp_path: Path) -> None:
    test = tmp_path / "test_present.py"
    test.write_text(
        "from tests.conftest import require_tool\n\n"
        "def test_present() -> None:\n    require_tool('sh', True)\n"
    )
    result = pytest_run("-p", "tests.conftest", str(test), env={})
    assert result.returncode == 0, result.stdout
    assert "Not run" not in result.stdout and "1 passed" in result.stdout


def listed_packages() -> list[str]:
    lines = (ROOT / ".ci" / "apt-packages.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_make_deps_installs_the_one_list_and_ci_uses_it() -> None:
    packages = listed_packages()
    assert {"apache2-dev", "chromium", "redis-server"} <= set(packages)
    dry = subprocess.run(
        ["make", "-n", "deps"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    install = dry.stdout.replace("\\\n", " ")
    (line,) = [line for line in install.splitlines() if "apt-get install" in line]
    assert line.split("--no-install-recommends")[1].split() == packages
    # .ci/run installs through `make deps` and lists no package of its own.
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make deps" in ci and "apt-get install" not in ci
