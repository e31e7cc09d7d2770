"""Pre-render every image under a folder for a list of variants (`pixfit batch`).

Layout: OUT_DIR/<path under SRC_DIR without its suffix>/<slug>.<ext>
  <slug>  the variant's option pairs sorted by name, NAME-VALUE joined by "_"
          (bw-3g_format-webp_w-640), or "original" when no option is given; characters
          other than letters, digits, "." and "-" become "-" (pos=fp:0.3,0.7 is
          pos-fp-0.3-0.7)
  <ext>   from the rendered media type: jpg, webp, avif, png (gif for an untouched GIF)
  e.g. SRC_DIR/trips/cat.jpg with w=640,format=webp -> OUT_DIR/trips/cat/format-webp_w-640.webp

Hidden files and folders (".name") and OUT_DIR itself are not read. A file that is not an
image pixfit reads, by neither its extension (.jpg .jpeg .png .webp .gif .avif) nor its
first bytes, is left alone and counted under "not images" (a LICENSE.md, a .txt, a .heic).
An output that exists and is newer than its source is skipped, so an interrupted run
resumes; --force renders all. A file that claims to be an image, by its name or its bytes,
and fails (corrupt, truncated, too large) is reported on stderr and the run goes on.
Exit code: 0 when every output was rendered or skipped, 1 when any failed.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, fields
from pathlib import Path

import pyvips
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixfit.config import Config, ConfigError
from pixfit.errors import BadOption, NotFound, PixfitError
from pixfit.options import Options, parse_options
from pixfit.registry import BY_EXTENSION, FORMATS, INPUTS, guess
from pixfit.rendering import render

__all__ = [
    "EXTENSIONS",
    "Summary",
    "Task",
    "Variant",
    "find_sources",
    "is_image",
    "make_folder",
    "parse_variants",
    "run_batch",
]

# Output file extensions by media type; gif only when a GIF source is passed through.
EXTENSIONS = {row.media_type: row.extensions[0] for row in FORMATS.values()}


@dataclass(frozen=True, slots=True)
class Variant:
    """One combination of options and the file name it is written under."""

    # (query name, value) pairs as given, sorted by name; empty means the untouched source.
    args: tuple[tuple[str, str], ...]
    options: Options

    @property
    def slug(self) -> str:
        """The output file name without its extension."""
        pairs = (f"{name}-{_SLUG_UNSAFE.sub('-', value)}" for name, value in self.args)
        return "_".join(pairs) or "original"


# What a file name should not hold: ":" is refused on Windows, "," and "#" trip up shells
# and URLs; "_" separates the pairs.
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True, slots=True)
class Task:
    """One output to render: a source file by one variant into one folder."""

    source: Path
    variant: Variant
    folder: Path


@dataclass(frozen=True, slots=True)
class Summary:
    """What a run did; rendered + skipped (up to date) + failed == files x variants."""

    # Image files found; not_images counts the other files, which were left alone.
    files: int
    not_images: int
    variants: int
    rendered: int
    skipped: int
    failed: int
    # Bytes of the sources (clashing ones left out), and of the outputs this run wrote.
    bytes_in: int
    bytes_out: int


def parse_variants(spec: str | None, flags: Mapping[str, str], config: Config) -> list[Variant]:
    """Every combination of the values in `spec` ("w=320,640;format=webp"), with the flags."""
    lists: dict[str, list[str]] = {}
    for part in filter(str.strip, (spec or "").split(";")):
        name, equals, values = (text.strip() for text in part.partition("="))
        if not equals or not name:
            raise BadOption(f"Expected NAME=V1,V2 for --variants but received {part.strip()!r}")
        if name in lists or name in flags:
            raise BadOption(f"Option {name!r} is given twice (in --variants or as a flag)")
        lists[name] = [value.strip() for value in _values(values)]
    # Keyed by the pairs, so a value listed twice is rendered once.
    variants: dict[tuple[tuple[str, str], ...], Variant] = {}
    for combination in itertools.product(*lists.values()):
        args = {**flags, **dict(zip(lists, combination, strict=True))}
        pairs = tuple(sorted((name, value.strip()) for name, value in args.items()))
        # Always strict: a typo in the list must fail now, not quietly render duplicates.
        options = parse_options(
            dict(pairs), max_edge=config.limits.max_output_edge, strict=True,
            presets=config.presets,
        )  # fmt: skip
        variants[pairs] = Variant(pairs, options)
    return list(variants.values())


def _values(text: str) -> list[str]:
    """The values of one --variants option, split on ",", keeping each fp:X,Y whole."""
    values: list[str] = []
    for piece in text.split(","):
        if values and values[-1].strip().lower().startswith("fp:") and "," not in values[-1]:
            values[-1] += f",{piece}"
        else:
            values.append(piece)
    return values


def run_batch(
    src: Path,
    out: Path,
    variants: list[Variant],
    config: Config,
    *,
    hints: Mapping[str, str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    exhaustive: bool = False,
) -> Summary:
    """Render every file under `src` by every variant into `out`; print a summary table.

    `exhaustive` searches every width, format and quality for each output: offline, the
    best answer matters more than the time.
    """
    if not src.is_dir():
        raise NotFound(f"No folder at {os.fspath(src)!r}")
    jobs = os.cpu_count() or 1 if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    # Once, up front: an OUT_DIR that cannot be made is one error, not one per file.
    make_folder(out)
    # Plain text: file names may hold [markup] or :emoji: codes; messages must not wrap.
    console = Console(stderr=True, markup=False, emoji=False, highlight=False)

    def report(source: Path, message: str) -> None:
        console.print(f"pixfit: {source}: {message}", soft_wrap=True)

    sources, others = _images(src, out)
    if others:
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        names = ", ".join(others[:5])
        console.print(f"pixfit: not images, left alone: {names}{more}", soft_wrap=True)
    todo: list[Task] = []
    skipped = failed = rendered = bytes_in = bytes_out = 0
    owners: dict[Path, Path] = {}
    for source in sources:
        folder = out / source.relative_to(src).with_suffix("")
        owner = owners.setdefault(folder, source)
        if owner != source:
            report(source, f"not rendered: its outputs would overwrite those of {owner}")
            failed += len(variants)
            continue
        stat = source.stat()
        bytes_in += stat.st_size
        for variant in variants:
            if not force and _is_fresh(folder, variant.slug, stat.st_mtime_ns):
                skipped += 1
            else:
                todo.append(Task(source, variant, folder))

    # Threads, not processes: libvips drops the GIL for the whole render. 20 JPEGs of
    # 1.6-4 MP x 6 variants on 2 cores shared with other jobs, median of 5 runs: 1 thread
    # 15.2 s, 2 threads 12.7 s, 2 processes 14.1 s wall, 13-14 s CPU either way. Processes
    # buy nothing, and threads need no pickling and stop cleanly on Ctrl-C.
    reported: set[tuple[Path, str]] = set()
    with (
        Progress(console=console, disable=not console.is_terminal) as progress,
        ThreadPoolExecutor(jobs) as pool,
    ):
        bar = progress.add_task("rendering", total=len(todo))
        futures = [pool.submit(_render_one, task, hints or {}, config, exhaustive) for task in todo]
        try:
            for future in as_completed(futures):
                task, size, error = future.result()
                progress.advance(bar)
                if error is None:
                    rendered, bytes_out = rendered + 1, bytes_out + size
                    continue
                failed += 1
                # Every variant of a corrupt file fails alike: say so once.
                if (task.source, error) not in reported:
                    reported.add((task.source, error))
                    report(task.source, error)
        except KeyboardInterrupt:
            pool.shutdown(cancel_futures=True)
            raise
    summary = Summary(
        len(sources), len(others), len(variants), rendered, skipped, failed, bytes_in, bytes_out
    )
    console.print(_table(summary))
    return summary


def find_sources(src: Path, out: Path) -> Iterator[Path]:
    """Every file under `src` in sorted order, leaving out hidden ones and `out`."""
    skip = out.resolve()
    for folder, dirs, files in os.walk(src):
        keep = [name for name in dirs if Path(folder, name).resolve() != skip]
        dirs[:] = sorted(name for name in keep if not name.startswith("."))
        yield from (Path(folder, name) for name in sorted(files) if not name.startswith("."))


def _images(src: Path, out: Path) -> tuple[list[Path], list[str]]:
    """The image files under `src`, and the names of the others, which are left alone."""
    images: list[Path] = []
    others: list[str] = []
    for path in find_sources(src, out):
        if is_image(path):
            images.append(path)
        else:
            others.append(os.fspath(path.relative_to(src)))
    return images, others


def is_image(path: Path) -> bool:
    """True when the file's extension or its first bytes name a format pixfit reads."""
    if BY_EXTENSION.get(path.suffix[1:].lower()) in INPUTS:
        return True
    try:
        with path.open("rb") as file:
            head = file.read(_SNIFFED_BYTES)
    except OSError:
        return True  # unreadable: let the render report why, as a failure
    return guess(head) is not None


# Enough for every signature in the registry (AVIF's "????ftypavif" is the longest).
_SNIFFED_BYTES = 32


def _is_fresh(folder: Path, slug: str, source_modified: int) -> bool:
    # The extension depends on the source (format=auto gives PNG for alpha), so look at
    # each. Strictly newer: an output in the same clock tick may predate a source edit.
    paths = (folder / f"{slug}.{ext}" for ext in EXTENSIONS.values())
    return any(path.exists() and path.stat().st_mtime_ns > source_modified for path in paths)


def _render_one(
    task: Task, hints: Mapping[str, str], config: Config, exhaustive: bool
) -> tuple[Task, int, str | None]:
    """Render and write one output; the error message, if any, instead of raising."""
    try:
        rendered = render(
            task.source, task.variant.options, hints=hints, config=config, exhaustive=exhaustive
        )
        target = task.folder / f"{task.variant.slug}.{EXTENSIONS[rendered.media_type]}"
        _write_atomically(target, rendered.data)
        # An edited source may now render to another format: drop the stale sibling.
        for ext in set(EXTENSIONS.values()) - {target.suffix[1:]}:
            target.with_name(f"{task.variant.slug}.{ext}").unlink(missing_ok=True)
    except PixfitError as error:
        return task, 0, f"{error.title.lower()}: {error}"
    except OSError as error:
        return task, 0, f"{error.strerror}: {error.filename}"
    except pyvips.Error as error:
        # A file libvips chokes on past the checks pixfit makes is still just a bad file.
        return task, 0, f"libvips: {error.message.strip()}"
    return task, len(rendered.data), None


def make_folder(folder: Path) -> None:
    """Make `folder` and its parents; OSError naming the path when that cannot be done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as error:
        # mkdir names the file in the way with "File exists"; say what is wrong with it.
        raise NotADirectoryError(errno.ENOTDIR, "Not a folder", error.filename) from None


def _write_atomically(target: Path, data: bytes) -> None:
    # A hidden temp name in the same folder, then a rename: an interrupted run leaves no
    # half file that a resume would take for a finished one.
    make_folder(target.parent)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _table(summary: Summary) -> Table:
    # One row per figure: a row of eight columns squeezes into "render…" and "1,260,7…"
    # on an 80-column terminal.
    table = Table(title="pixfit batch", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for field in fields(summary):
        table.add_row(field.name.replace("_", " "), f"{getattr(summary, field.name):,}")
    return table
