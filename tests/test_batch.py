import os
import subprocess
import sys
from pathlib import Path

import pytest
import pyvips

from pixfit.batch import is_image, parse_variants
from pixfit.config import SAMPLES_DIR, Config
from pixfit.errors import BadOption

VARIANTS = "w=100,200;format=webp,jpeg"
GOOD = ("alpha", "landscape", "sub/portrait")
SLUGS = ("format-jpeg_w-100.jpg", "format-jpeg_w-200.jpg", "format-webp_w-100.webp",
         "format-webp_w-200.webp")  # fmt: skip


def pixfit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixfit.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        # A wide console, so the summary table is never squeezed.
        env={**(os.environ if env is None else env), "COLUMNS": "200"},
        check=False,
    )


def summary(stderr: str) -> dict[str, int]:
    """The summary table's rows, by name."""
    rows = [line.split("│")[1:-1] for line in stderr.splitlines() if line.count("│") == 3]
    return {name.strip(): int(value.replace(",", "")) for name, value in rows}


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
    # One line per bad file, however many variants failed; the text file is no failure.
    errors = [line for line in result.stderr.splitlines() if line.startswith("pixfit: ")]
    assert len(errors) == 2, result.stderr
    assert errors[0] == "pixfit: not images, left alone: notes.txt"
    assert errors[1].startswith(f"pixfit: {src / 'broken.jpg'}: corrupt image: ")
    assert "Traceback" not in result.stderr
    images = [path for path in src.rglob("*") if path.is_file() and path.suffix != ".txt"]
    assert summary(result.stderr) == {
        "files": 4, "not images": 1, "variants": 4, "rendered": 12, "skipped": 0, "failed": 4,
        "bytes in": sum(path.stat().st_size for path in images),
        "bytes out": sum((out / name).stat().st_size for name in outputs(out)),
    }  # fmt: skip


def test_the_bundled_samples_batch_cleanly(tmp_path: Path) -> None:
    # The samples folder ships its licence texts beside the images: they are not failures.
    out = tmp_path / "out"
    result = pixfit("batch", str(SAMPLES_DIR), str(out), "--variants", "w=64;format=webp,jpeg")
    assert result.returncode == 0, result.stderr
    counts = summary(result.stderr)
    assert (counts["files"], counts["not images"], counts["failed"]) == (4, 3, 0), counts
    assert counts["rendered"] == 8
    assert "pixfit: not images, left alone: GPL-2.txt, LGPL-3.txt, LICENSE.md" in result.stderr
    for name in ("alpha", "landscape", "portrait", "wide"):
        image = pyvips.Image.new_from_file(str(out / name / "format-webp_w-64.webp"))
        assert (image.width, image.get("vips-loader")) == (64, "webpload")


@pytest.mark.parametrize(
    ("name", "content", "image"),
    [
        ("notes.txt", b"plain text", False),
        ("LICENSE", b"MIT License", False),
        ("photo.jxl", b"\xff\x0a\xfa\x1f", False),  # an image, but not one pixfit reads
        ("photo.heic", b"\0\0\0\x18ftypheic", True),
        ("no-suffix-heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", True),
        ("photo.JPG", b"not really", True),  # the name claims it: a failure if it fails
        ("no-suffix", b"\x89PNG\r\n\x1a\n....", True),  # the bytes claim it
        ("pic.avif", b"\0\0\0\x1cftypavif", True),
    ],
)
def test_is_image_by_name_or_bytes(tmp_path: Path, name: str, content: bytes, image: bool) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert is_image(path) is image


def test_a_file_named_as_an_image_that_is_not_one_fails(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "fake.png").write_text("not a png")
    result = pixfit("batch", str(src), str(tmp_path / "out"), "--w", "10")
    assert result.returncode == 1
    assert f"{src / 'fake.png'}: unsupported image: " in result.stderr
    assert summary(result.stderr)["failed"] == 1 and summary(result.stderr)["not images"] == 0


def test_help_says_what_is_left_alone() -> None:
    result = pixfit("batch", "--help")
    assert '"not images"' in result.stdout and "LICENSE.md" in result.stdout


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
        ("rotate=90,270;flip=hv", {}, ["flip-hv_rotate-90", "flip-hv_rotate-270"]),
        ("blur=0.5,2", {"sharpen": "1"}, ["blur-0.5_sharpen-1", "blur-2_sharpen-1"]),
        # A focal point's "," is its own, not a list's; ":" and "," stay out of file names.
        (
            "pos=fp:0.3,0.7,north, fp:0.5,0.5",
            {},
            ["pos-fp-0.3-0.7", "pos-north", "pos-fp-0.5-0.5"],
        ),
        ("bg=#f80", {}, ["bg--f80"]),
    ],
)
def test_parse_variants(spec: str | None, flags: dict[str, str], slugs: list[str]) -> None:
    assert [variant.slug for variant in parse_variants(spec, flags, Config())] == slugs


def test_parse_variants_takes_presets() -> None:
    config = Config().merged({"presets": {"card": {"w": "400", "fit": "cover"}}})
    variants = parse_variants("w=200,400", {"preset": "card"}, config)
    assert [variant.slug for variant in variants] == ["preset-card_w-200", "preset-card_w-400"]
    assert [variant.options.width for variant in variants] == [200, 400]
    with pytest.raises(BadOption, match="for preset"):
        parse_variants(None, {"preset": "nope"}, config)


def test_batch_turns_every_image(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pixfit("batch", str(src), str(out), "--variants", "rotate=90,180", "--w", "100")
    assert result.returncode == 1, result.stderr  # the broken file and the text file fail
    # The 400x300 landscape, turned a quarter, is 3:4; turned half, it stays 4:3.
    quarter = pyvips.Image.new_from_file(str(out / "landscape" / "rotate-90_w-100.jpg"))
    half = pyvips.Image.new_from_file(str(out / "landscape" / "rotate-180_w-100.jpg"))
    assert (quarter.width, quarter.height) == (100, 133)
    assert (half.width, half.height) == (100, 75)


@pytest.mark.parametrize(
    ("spec", "flags"),
    [("w=320;w=640", {}), ("w=320", {"w": "640"}), ("w=320", {"width": "640"}), ("=3", {})],
)
def test_parse_variants_refuses_options_given_twice(spec: str, flags: dict[str, str]) -> None:
    with pytest.raises(BadOption):
        parse_variants(spec, flags, Config())
