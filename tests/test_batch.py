import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips

from pixfit.batch import parse_variants
from pixfit.config import Config
from pixfit.errors import BadOption

VARIANTS = "w=100,200;format=webp,jpeg"
GOOD = ("alpha", "landscape", "sub/portrait")
SLUGS = ("format-jpeg_w-100.jpg", "format-jpeg_w-200.jpg", "format-webp_w-100.webp",
         "format-webp_w-200.webp")  # fmt: skip


def pixfit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixfit.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        # A wide console, so the summary table is never squeezed.
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def summary(stderr: str) -> dict[str, int]:
    """The summary table's one row, by column name."""
    lines = stderr.splitlines()
    (names,) = [line.split("┃")[1:-1] for line in lines if line.count("┃") == 8]
    (values,) = [line.split("│")[1:-1] for line in lines if line.count("│") == 8]
    return {
        name.strip(): int(value.replace(",", "")) for name, value in zip(names, values, strict=True)
    }


def outputs(folder: Path) -> dict[str, int]:
    """Every file under `folder` with its mtime, by its relative path."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path.relative_to(folder).as_posix(): path.stat().st_mtime_ns for path in files}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Three small images (one in a subfolder), a truncated JPEG and a text file."""
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    rgb = pyvips.Image.black(400, 300).new_from_image([200, 120, 40])
    rgb.write_to_file(str(folder / "landscape.jpg"))
    rgb.rot90().write_to_file(str(folder / "sub" / "portrait.webp"))
    rgb.crop(0, 0, 200, 200).bandjoin(128).write_to_file(str(folder / "alpha.png"))
    whole = (folder / "landscape.jpg").read_bytes()
    (folder / "broken.jpg").write_bytes(whole[: len(whole) // 2] + b"\x00garbage" * 4)
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_renders_every_variant_and_reports_bad_files(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pixfit("batch", str(src), str(out), "--variants", VARIANTS, "--jobs", "2")
    assert result.returncode == 1, result.stderr
    assert list(outputs(out)) == [f"{name}/{slug}" for name in GOOD for slug in SLUGS]
    image = pyvips.Image.new_from_file(str(out / "landscape" / "format-webp_w-200.webp"))
    assert (image.width, image.height, image.get("vips-loader")) == (200, 150, "webpload")
    image = pyvips.Image.new_from_file(str(out / "sub" / "portrait" / "format-jpeg_w-100.jpg"))
    assert (image.width, image.height, image.get("vips-loader")) == (100, 133, "jpegload")
    # One line per bad file, however many variants failed.
    errors = [line for line in result.stderr.splitlines() if line.startswith("pixfit: ")]
    assert len(errors) == 2, result.stderr
    assert f"{src / 'broken.jpg'}: corrupt image: " in errors[0] + errors[1]
    assert f"{src / 'notes.txt'}: unsupported image: " in errors[0] + errors[1]
    assert "Traceback" not in result.stderr
    assert summary(result.stderr) == {
        "files": 5, "variants": 4, "rendered": 12, "skipped": 0, "failed": 8,
        "bytes in": sum(path.stat().st_size for path in src.rglob("*") if path.is_file()),
        "bytes out": sum((out / name).stat().st_size for name in outputs(out)),
    }  # fmt: skip


def test_second_run_skips_and_force_renders_again(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (src / "broken.jpg").unlink()
    (src / "notes.txt").unlink()
    assert pixfit("batch", str(src), str(out), "--variants", VARIANTS).returncode == 0
    first = outputs(out)

    again = pixfit("batch", str(src), str(out), "--variants", VARIANTS)
    assert again.returncode == 0, again.stderr
    assert outputs(out) == first
    assert summary(again.stderr)["rendered"] == 0 and summary(again.stderr)["skipped"] == 12

    forced = pixfit("batch", str(src), str(out), "--variants", VARIANTS, "--force")
    assert forced.returncode == 0, forced.stderr
    assert summary(forced.stderr)["rendered"] == 12
    assert all(mtime > first[name] for name, mtime in outputs(out).items())


def test_flags_alone_make_one_variant(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pixfit(
        "batch", str(src / "sub"), str(out), "--w", "64", "--h", "64", "--fit", "cover",
        "--format", "png",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert list(outputs(out)) == ["portrait/fit-cover_format-png_h-64_w-64.png"]
    image = pyvips.Image.new_from_file(str(out / "portrait" / "fit-cover_format-png_h-64_w-64.png"))
    assert (image.width, image.height, image.get("vips-loader")) == (64, 64, "pngload")


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("w=100,abc", "Expected an integer 1..8192 for w but received 'abc'"),
        ("w=100;wdth=200", "Unknown option 'wdth'"),
        ("w100", "Expected NAME=V1,V2 for --variants but received 'w100'"),
    ],
)
def test_bad_variant_fails_before_rendering(
    src: Path, tmp_path: Path, variants: str, message: str
) -> None:
    out = tmp_path / "out"
    result = pixfit("batch", str(src), str(out), "--variants", variants)
    assert result.returncode != 0
    assert message in result.stderr
    assert not out.exists()


def test_help_documents_the_layout() -> None:
    result = pixfit("batch", "--help")
    assert "OUT_DIR/<path under SRC_DIR without its suffix>/<slug>.<ext>" in result.stdout


@pytest.mark.parametrize(
    ("spec", "flags", "slugs"),
    [
        (None, {}, ["original"]),
        (None, {"w": "640"}, ["w-640"]),
        ("w=320,640", {"fit": "cover"}, ["fit-cover_w-320", "fit-cover_w-640"]),
        ("format=webp; bw=2g,3g", {}, ["bw-2g_format-webp", "bw-3g_format-webp"]),
        ("w=320,320", {}, ["w-320"]),
        ("dpr=1.5;bw=slow-2g", {}, ["bw-slow-2g_dpr-1.5"]),
    ],
)
def test_parse_variants(spec: str | None, flags: dict[str, str], slugs: list[str]) -> None:
    assert [variant.slug for variant in parse_variants(spec, flags, Config())] == slugs


@pytest.mark.parametrize(
    ("spec", "flags"),
    [("w=320;w=640", {}), ("w=320", {"w": "640"}), ("w=320", {"width": "640"}), ("=3", {})],
)
def test_parse_variants_refuses_options_given_twice(spec: str, flags: dict[str, str]) -> None:
    with pytest.raises(BadOption):
        parse_variants(spec, flags, Config())
