"""Pre-render every image under a folder for a list of variants (`pixfit batch`).

Layout: OUT_DIR/<path under SRC_DIR without its suffix>/<slug>.<ext>
  <slug>  the variant's option pairs sorted by name, NAME-VALUE joined by "_"
          (bw-3g_format-webp_w-640), or "original" when no option is given
  <ext>   from the rendered media type: jpg, webp, avif, png (gif for an untouched GIF)
  e.g. SRC_DIR/trips/cat.jpg with w=640,format=webp -> OUT_DIR/trips/cat/format-webp_w-640.webp

Hidden files and folders (".name") and OUT_DIR itself are not read. An output that exists
and is newer than its source is skipped, so an interrupted run resumes; --force renders all.
A file that fails (corrupt, not an image) is reported on stderr and the run goes on.
Exit code: 0 when every output was rendered or skipped, 1 when any failed.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pyvips
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixfit.config import Config, ConfigError
from pixfit.errors import BadOption, NotFound, PixfitError
from pixfit.options import Options, parse_options
from pixfit.render import render

EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/png": "png",
    "image/gif": "gif",
}


@dataclass(frozen=True, slots=True)
class Variant:
    """One combination of options and the file name it is written under."""

    # (query name, value) pairs as given, sorted by name; empty means the untouched source.
    args: tuple[tuple[str, str], ...]
    options: Options

    @property
    def slug(self) -> str:
        """The output file name without its extension."""
        return "_".join(f"{name}-{value}" for name, value in self.args) or "original"


@dataclass(frozen=True, slots=True)
class Task:
    """One output to render: a source file by one variant into one folder."""

    source: Path
    variant: Variant
    folder: Path


@dataclass(frozen=True, slots=True)
class Summary:
    """What a run did; rendered + skipped + failed == files x variants."""

    files: int
    variants: int
    rendered: int
    skipped: int
    failed: int
    # Sizes of all source files found, and of the outputs this run wrote.
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
        lists[name] = [value.strip() for value in values.split(",")]
    # Keyed by the pairs, so a value listed twice is rendered once.
    variants: dict[tuple[tuple[str, str], ...], Variant] = {}
    for combination in itertools.product(*lists.values()):
        args = {**flags, **dict(zip(lists, combination, strict=True))}
        pairs = tuple(sorted((name, value.strip()) for name, value in args.items()))
        # Always strict: a typo in the list must fail now, not quietly render duplicates.
        options = parse_options(dict(pairs), max_edge=config.limits.max_output_edge, strict=True)
        variants[pairs] = Variant(pairs, options)
    return list(variants.values())


def run_batch(
    src: Path,
    out: Path,
    variants: list[Variant],
    config: Config,
    *,
    hints: Mapping[str, str] | None = None,
    jobs: int | None = None,
    force: bool = False,
) -> Summary:
    """Render every source under `src` by every variant into `out`, then print a summary.

    `hints` are request headers (an Accept to negotiate `format=auto` with).
    """
    if not src.is_dir():
        raise NotFound(f"No folder at {os.fspath(src)!r}")
    jobs = jobs or os.cpu_count() or 1
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    console = Console(stderr=True)

    def report(source: Path, message: str) -> None:
        console.print(
            f"pixfit: {source}: {message}", markup=False, highlight=False, emoji=False,
            soft_wrap=True,
        )  # fmt: skip

    sources = list(find_sources(src, out))
    todo: list[Task] = []
    skipped = failed = rendered = bytes_out = 0
    owners: dict[Path, Path] = {}
    for source in sources:
        folder = out / source.relative_to(src).with_suffix("")
        owner = owners.setdefault(folder, source)
        if owner != source:
            report(source, f"not rendered: its outputs would overwrite those of {owner}")
            failed += len(variants)
            continue
        modified = source.stat().st_mtime_ns
        for variant in variants:
            if not force and _is_fresh(folder, variant.slug, modified):
                skipped += 1
            else:
                todo.append(Task(source, variant, folder))

    # Threads, not processes: libvips drops the GIL for all of a render. On 20 JPEGs of
    # 2-3 MP x 6 variants, 2 cores: 1 job 26.6 s, 2 threads 14.2 s, 2 processes 14.1 s.
    # Threads need no pickling and stop cleanly on Ctrl-C.
    reported: set[tuple[Path, str]] = set()
    with (
        Progress(console=console, disable=not console.is_terminal) as progress,
        ThreadPoolExecutor(jobs) as pool,
    ):
        bar = progress.add_task("rendering", total=len(todo))
        futures = [pool.submit(_render_one, task, hints or {}, config) for task in todo]
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
        len(sources), len(variants), rendered, skipped, failed,
        sum(source.stat().st_size for source in sources), bytes_out,
    )  # fmt: skip
    console.print(_table(summary))
    return summary


def find_sources(src: Path, out: Path) -> Iterator[Path]:
    """Every file under `src` in sorted order, leaving out hidden ones and `out`."""
    skip = out.resolve()
    for folder, dirs, files in os.walk(src):
        dirs[:] = sorted(
            name
            for name in dirs
            if not name.startswith(".") and Path(folder, name).resolve() != skip
        )
        yield from (Path(folder, name) for name in sorted(files) if not name.startswith("."))


def _is_fresh(folder: Path, slug: str, source_modified: int) -> bool:
    # The extension depends on the source (format=auto gives PNG for alpha), so look at
    # each. Strictly newer: an output in the same clock tick may predate a source edit.
    for ext in EXTENSIONS.values():
        try:
            if (folder / f"{slug}.{ext}").stat().st_mtime_ns > source_modified:
                return True
        except FileNotFoundError:
            pass
    return False


def _render_one(
    task: Task, hints: Mapping[str, str], config: Config
) -> tuple[Task, int, str | None]:
    """Render and write one output; the error message, if any, instead of raising."""
    try:
        rendered = render(task.source, task.variant.options, hints=hints, config=config)
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


def _write_atomically(target: Path, data: bytes) -> None:
    # A hidden temp name in the same folder, then a rename: an interrupted run leaves no
    # half file that a resume would take for a finished one.
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _table(summary: Summary) -> Table:
    table = Table(title="pixfit batch", caption="rendered, skipped, failed: outputs")
    columns = ("files", "variants", "rendered", "skipped", "failed", "bytes in", "bytes out")
    values = (
        summary.files, summary.variants, summary.rendered, summary.skipped, summary.failed,
        summary.bytes_in, summary.bytes_out,
    )  # fmt: skip
    for name in columns:
        table.add_column(name, justify="right")
    table.add_row(*(f"{value:,}" for value in values))
    return table
