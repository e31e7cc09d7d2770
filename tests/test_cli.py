import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import pyvips

from pixfit.batch import is_image
from pixfit.cache import DiskCache, make_cache
from pixfit.cli import add_option_flags, option_args
from pixfit.config import SAMPLES_DIR, Config
from pixfit.options import ALIASES, OPTIONS, Options, parse_options
from pixfit.profiles import NetworkClass
from pixfit.registry import OutputFormat
from tests.conftest import shown

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
    image = shown(result.stdout)
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


def test_operations_and_presets_are_flags(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    # A preset from the environment; --rotate turns the 4:3 landscape to 3:4 before the box.
    env = {"PIXFIT_PRESETS_THUMB_W": "120", "PIXFIT_PRESETS_THUMB_FORMAT": "png"}
    result = pixfit(
        "render", str(LANDSCAPE), "-o", str(out), "--preset", "thumb", "--rotate", "90",
        "--flip", "h", "--sharpen", "1", "--blur", "0.5", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = pyvips.Image.new_from_file(str(out))
    source = pyvips.Image.new_from_file(str(LANDSCAPE))
    assert image.get("vips-loader") == "pngload"
    assert (image.width, image.height) == (120, round(120 * source.width / source.height))
    unknown = pixfit("render", str(LANDSCAPE), "-o", str(out), "--preset", "nope", env=env)
    assert unknown.returncode != 0
    assert b"Expected thumb for preset but received 'nope'" in unknown.stderr


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


@pytest.mark.parametrize(
    ("name", "loader"),
    [("out.webp", "webpload"), ("out.avif", "heifload"), ("out.png", "pngload"),
     ("out.JPEG", "jpegload")],
)  # fmt: skip
def test_the_output_name_chooses_the_format(tmp_path: Path, name: str, loader: str) -> None:
    out = tmp_path / name
    result = pixfit("render", str(LANDSCAPE), "-o", str(out), "--w", "200")
    assert result.returncode == 0, result.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.width, image.get("vips-loader")) == (200, loader)


def test_an_option_less_render_to_another_format_converts(tmp_path: Path) -> None:
    # The first trap: this used to write JPEG bytes under the .webp name.
    out = tmp_path / "photo.webp"
    result = pixfit("render", str(LANDSCAPE), "-o", str(out))
    assert result.returncode == 0, result.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.width, image.height, image.get("vips-loader")) == (1600, 1000, "webpload")
    assert b"image/webp" in result.stderr


def test_an_option_less_render_to_the_same_format_copies_and_says_original(
    tmp_path: Path,
) -> None:
    out = tmp_path / "copy.jpg"
    result = pixfit("render", str(LANDSCAPE), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == LANDSCAPE.read_bytes()
    assert b"quality original" in result.stderr and b"None" not in result.stderr


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("x.jpg", ["--format", "webp"], b"Expected --format jpeg for "),
        ("x.webp", ["--f", "jpg"], b"Expected --format webp for "),
        # auto without an Accept gives JPEG: refused after the render, before any write.
        ("x.webp", ["--format", "auto"], b"Expected WebP for "),
        ("x.heic", ["--w", "100"], b"pixfit reads HEIC but does not write it"),
    ],
)
def test_a_name_that_contradicts_the_format_is_an_error_naming_both(
    tmp_path: Path, name: str, args: list[str], message: bytes
) -> None:
    out = tmp_path / name
    result = pixfit("render", str(LANDSCAPE), "-o", str(out), *args)
    assert result.returncode == 1
    assert message in result.stderr and out.name.encode() in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not out.exists()


def test_stdout_keeps_negotiating() -> None:
    webp = pixfit("render", str(LANDSCAPE), "-o", "-", "--w", "120", "--accept", "image/webp")
    assert webp.returncode == 0, webp.stderr
    assert pyvips.Image.new_from_buffer(webp.stdout, "").get("vips-loader") == "webpload_buffer"
    plain = pixfit("render", str(LANDSCAPE), "-o", "-", "--w", "120")
    assert pyvips.Image.new_from_buffer(plain.stdout, "").get("vips-loader") == "jpegload_buffer"


def test_missing_output_folders_are_made(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "out.jpg"
    result = pixfit("render", str(LANDSCAPE), "-o", str(out), "--w", "50")
    assert result.returncode == 0, result.stderr
    assert pyvips.Image.new_from_file(str(out)).width == 50


def bad_path_commands(tmp: Path) -> list[tuple[list[str], Path]]:
    """Every command that takes a path, each with a path that cannot work, and that path."""
    a_file = tmp / "a-file"
    a_file.write_text("x")
    missing = tmp / "missing"
    cache_in_a_file = tmp / "cache-in-a-file.toml"
    cache_in_a_file.write_text(f'[cache]\nkind = "disk"\npath = "{a_file / "cache"}"\n')
    return [
        (["render", str(missing / "in.jpg"), "-o", str(tmp / "o.jpg")], missing / "in.jpg"),
        (["render", str(tmp), "-o", str(tmp / "o.jpg")], tmp),
        (["render", str(LANDSCAPE), "-o", str(tmp)], tmp),
        (["render", str(LANDSCAPE), "-o", str(a_file / "o.jpg")], a_file),
        (["render", str(LANDSCAPE), "-o", str(a_file / "deeper" / "o.jpg"), "--w", "9"], a_file),
        (["render", str(LANDSCAPE), "-o", "o.jpg", "--config", str(tmp)], tmp),
        (["batch", str(missing), str(tmp / "out")], missing),
        (["batch", str(a_file), str(tmp / "out")], a_file),
        (["batch", str(SAMPLES_DIR), str(a_file / "out")], a_file),
        (["batch", str(SAMPLES_DIR), str(a_file)], a_file),
        (["serve", "--root", str(missing)], missing),
        (["serve", "--root", str(a_file)], a_file),
        (["serve", "--config", str(tmp)], tmp),
        (["purge", "a.jpg", "--config", str(missing / "c.toml")], missing / "c.toml"),
        (["purge", "a.jpg", "--config", str(cache_in_a_file)], a_file / "cache"),
        (["config", "--config", str(missing / "c.toml")], missing / "c.toml"),
        (["config", "--config", str(tmp)], tmp),
    ]


def test_bad_paths_fail_in_one_line_that_names_them(tmp_path: Path) -> None:
    for args, wrong in bad_path_commands(tmp_path):
        result = pixfit(*args)
        assert result.returncode in (1, 2), (args, result.stderr)
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pixfit: "), (args, lines)
        assert b"Traceback" not in result.stderr
        # The whole path that is wrong, not a prefix of another.
        assert re.search(re.escape(str(wrong)) + r"(['\":\s]|$)", lines[0]), (wrong, lines)


def test_help_shows_each_flag_with_its_values() -> None:
    result = pixfit("render", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    text = result.stdout.decode()
    for flag, spec in OPTIONS.items():
        assert f"--{flag} {spec.shown_as}" in text or f"--{flag.replace('_', '-')} " in text
        assert spec.help in text, flag
    assert "VALUE" not in text
    assert "--fit FIT" in text and "inside, cover, contain, fill or outside" in text
    assert "extension chooses the format" in text


def test_config_prints_the_cache_folder_really_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in ({"TMPDIR": str(tmp_path)}, {"TMPDIR": str(tmp_path), "PIXFIT_CACHE_PATH": ""}):
        result = pixfit("config", env=env)
        assert result.returncode == 0, result.stderr
        printed = tomllib.loads(result.stdout.decode())
        assert printed["cache"]["path"] == str(tmp_path / "pixfit-cache")
    # ...and that is where a disk cache made from the default configuration lives.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = Config.load({"PIXFIT_CACHE_KIND": "disk"})
    cache = make_cache(config.cache)
    assert isinstance(cache, DiskCache) and cache.path == tmp_path / "pixfit-cache"
    assert cache.path.is_dir()


README = Path(__file__).parent.parent / "README.md"


def test_readme_names_every_bundled_sample() -> None:
    text = README.read_text()
    listed = re.findall(r"^\| `([\w.]+)` \| \d+ x \d+ \|", text, flags=re.MULTILINE)
    images = sorted(path.name for path in SAMPLES_DIR.iterdir() if is_image(path))
    assert sorted(listed) == images
    assert "src/pixfit/samples/" in text


def test_readme_quick_start_commands_run(tmp_path: Path) -> None:
    text = README.read_text()
    block = text.split("or from the checkout:\n\n```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    root = Path(__file__).parent.parent
    for command in commands:
        words = shlex.split(command.replace("/tmp/", f"{tmp_path}/"))
        assert words[0] == ".venv/bin/pixfit"
        args = [str(root / word) if word.startswith("src/") else word for word in words[1:]]
        result = pixfit(*args)
        assert result.returncode == 0, (command, result.stderr)
    image = pyvips.Image.new_from_file(str(tmp_path / "landscape.webp"))
    assert (image.width, image.get("vips-loader")) == (800, "webpload")
    assert (tmp_path / "variants" / "wide" / "format-webp_w-320.webp").exists()
