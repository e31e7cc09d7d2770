import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import pyvips

from pixfit.cli import add_option_flags, option_args
from pixfit.config import SAMPLES_DIR
from pixfit.options import ALIASES, OPTIONS, Options, parse_options
from pixfit.profiles import NetworkClass
from pixfit.registry import OutputFormat

LANDSCAPE = SAMPLES_DIR / "landscape.jpg"


def pixfit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pixfit.cli", *args],
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_render_writes_the_fitted_image(tmp_path: Path) -> None:
    out = tmp_path / "out.webp"
    result = pixfit(
        "render", str(LANDSCAPE), "-o", str(out), "--w", "400", "--format", "webp", "--bw", "3g"
    )
    assert result.returncode == 0, result.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.width, image.get("vips-loader")) == (400, "webpload")
    assert b"class 3g" in result.stderr and b"budget 100000 met" in result.stderr


def test_render_to_stdout_with_long_flags() -> None:
    result = pixfit(
        "render", str(LANDSCAPE), "-o", "-", "--width", "300", "--h", "300", "--fit", "cover",
        "--max-bytes", "20000", "--screen", "1280x720", "--dpr", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) <= 20000
    image = pyvips.Image.new_from_buffer(result.stdout, "")
    assert (image.width, image.height) == (300, 300)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--w", "abc"], b"Expected an integer 1..8192 for w but received 'abc'"),
        (["--fit", "squash"], b"for fit"),
        (["--q", "0"], b"for q"),
    ],
)
def test_bad_options_exit_non_zero_with_a_message(
    tmp_path: Path, args: list[str], message: bytes
) -> None:
    result = pixfit("render", str(LANDSCAPE), "-o", str(tmp_path / "x.jpg"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_missing_and_non_image_inputs_fail_cleanly(tmp_path: Path) -> None:
    missing = pixfit("render", str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "x.jpg"))
    assert missing.returncode != 0 and b"not found" in missing.stderr
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    bad = pixfit("render", str(text), "-o", str(tmp_path / "x.jpg"), "--w", "10")
    assert bad.returncode != 0 and b"unsupported image" in bad.stderr
    assert b"Traceback" not in bad.stderr + missing.stderr


def test_config_prints_effective_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 9001\n")
    result = pixfit("config", "--config", str(path), env={"PIXFIT_LIMITS_MAX_PIXELS": "1234"})
    assert result.returncode == 0, result.stderr
    printed = tomllib.loads(result.stdout.decode())
    assert printed["server"]["port"] == 9001
    assert printed["limits"]["max_pixels"] == 1234
    assert printed["profiles"]["2g"]["budget"] == 25000


def test_bad_config_fails_with_the_key() -> None:
    result = pixfit("config", env={"PIXFIT_SERVER_PORT": "x"})
    assert result.returncode == 2
    assert b"server.port" in result.stderr


def test_every_option_has_a_flag_with_a_sentence_of_help() -> None:
    parser = argparse.ArgumentParser()
    add_option_flags(parser)
    flags = {spelling: action for action in parser._actions for spelling in action.option_strings}
    for name in [*OPTIONS, *ALIASES]:
        action = flags[f"--{name}"]
        assert action.help and action.help[0].isupper() and action.help.endswith("."), name
    assert flags["--max-bytes"] is flags["--max_bytes"]
    for name, spec in OPTIONS.items():
        assert spec.help == flags[f"--{name}"].help


def test_flags_come_back_as_query_options() -> None:
    parser = argparse.ArgumentParser()
    add_option_flags(parser)
    args = parser.parse_args(["--width", "300", "--max-bytes", "900", "--f", "jpg", "--bw", "2g"])
    given = option_args(args)
    assert given == {"width": "300", "max_bytes": "900", "f": "jpg", "bw": "2g"}
    assert parse_options(given) == Options(
        width=300, max_bytes=900, format=OutputFormat.JPEG, network=NetworkClass.TWO_G
    )
