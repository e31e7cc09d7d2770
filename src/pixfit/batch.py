"""Pre-render every image under a folder for a list of variants (`pixfit batch`).

SRC_DIR and OUT_DIR are folders or s3://BUCKET/FOLDER (read with source.s3_endpoint_url and
source.s3_region, and the standard AWS credentials). The renders run on threads, or on a
dask.distributed cluster with --scheduler tcp://HOST:8786, whose workers must reach both.

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
An output that exists and is newer than its source (in a bucket: made from the source's
current ETag) is skipped, so an interrupted run resumes; --force renders all. A file that
claims to be an image, by its name or its bytes, and fails (corrupt, truncated, too large)
is reported on stderr and the run goes on.
Exit code: 0 when every output was rendered or skipped, 1 when any failed.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

import pyvips
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pixfit.cluster import completed
from pixfit.config import Config, ConfigError
from pixfit.errors import BadOption, NotFound, PixfitError
from pixfit.options import Options, parse_options
from pixfit.registry import BY_EXTENSION, FORMATS, INPUTS, guess
from pixfit.rendering import render
from pixfit.trees import Entry, Folder, Tree, make_folder, open_tree

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
    """One output to render: a source file by one variant into one folder of OUT_DIR."""

    source: Entry
    variant: Variant
    # The folder's name in OUT_DIR: the source's name without its suffix.
    folder: str

    def output(self, extension: str) -> str:
        """The name of the output with this file extension."""
        return f"{self.folder}/{self.variant.slug}.{extension}"


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
    src: str | Path,
    out: str | Path,
    variants: list[Variant],
    config: Config,
    *,
    hints: Mapping[str, str] | None = None,
    jobs: int | None = None,
    force: bool = False,
    exhaustive: bool = False,
    scheduler: str | None = None,
) -> Summary:
    """Render every file under `src` by every variant into `out`; print a summary table.

    `exhaustive` searches every width, format and quality for each output: offline, the
    best answer matters more than the time. `scheduler` (tcp://HOST:PORT) runs the
    renders on that Dask cluster instead of this machine's threads.
    """
    store = {"endpoint_url": config.source.s3_endpoint_url, "region": config.source.s3_region}
    sources_tree, out_tree = open_tree(src, **store), open_tree(out, **store)
    if isinstance(sources_tree, Folder) and not sources_tree.root.is_dir():
        raise NotFound(f"No folder at {os.fspath(src)!r}")
    jobs = os.cpu_count() or 1 if jobs is None else jobs
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    if isinstance(out_tree, Folder):
        # Once, up front: an OUT_DIR that cannot be made is one error, not one per file.
        make_folder(out_tree.root)
    # Plain text: file names may hold [markup] or :emoji: codes; messages must not wrap.
    console = Console(stderr=True, markup=False, emoji=False, highlight=False)

    def report(source: str, message: str) -> None:
        console.print(f"pixfit: {sources_tree.display(source)}: {message}", soft_wrap=True)

    sources, others = _images(sources_tree, out_tree)
    if others:
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        names = ", ".join(others[:5])
        console.print(f"pixfit: not images, left alone: {names}{more}", soft_wrap=True)
    todo: list[Task] = []
    skipped = failed = rendered = bytes_in = bytes_out = 0
    owners: dict[str, str] = {}
    existing = set() if force else out_tree.names()
    for source in sources:
        folder = str(PurePosixPath(source.name).with_suffix(""))
        owner = owners.setdefault(folder, source.name)
        if owner != source.name:
            report(
                source.name,
                f"not rendered: its outputs would overwrite those of {sources_tree.display(owner)}",
            )
            failed += len(variants)
            continue
        bytes_in += source.size
        for variant in variants:
            task = Task(source, variant, folder)
            if _is_fresh(out_tree, existing, task):
                skipped += 1
            else:
                todo.append(task)

    reported: set[tuple[str, str]] = set()
    arguments = (sources_tree, out_tree, hints or {}, config, exhaustive)
    with (
        Progress(console=console, disable=not console.is_terminal) as progress,
        completed(_render_one, todo, arguments, jobs=jobs, scheduler=scheduler) as results,
    ):
        bar = progress.add_task("rendering", total=len(todo))
        for task, size, error in results:
            progress.advance(bar)
            if error is None:
                rendered, bytes_out = rendered + 1, bytes_out + size
                continue
            failed += 1
            # Every variant of a corrupt file fails alike: say so once.
            if (task.source.name, error) not in reported:
                reported.add((task.source.name, error))
                report(task.source.name, error)
    summary = Summary(
        len(sources), len(others), len(variants), rendered, skipped, failed, bytes_in, bytes_out
    )
    console.print(_table(summary))
    return summary


def find_sources(src: Path, out: Path) -> Iterator[Path]:
    """Every file under `src` in sorted order, leaving out hidden ones and `out`."""
    for entry in Folder(src).files(Folder(out)):
        yield src / entry.name


def _images(tree: Tree, out: Tree) -> tuple[list[Entry], list[str]]:
    """The image files of `tree`, and the names of the others, which are left alone."""
    images: list[Entry] = []
    others: list[str] = []
    for entry in tree.files(out):
        if _is_image_in(tree, entry.name):
            images.append(entry)
        else:
            others.append(entry.name)
    return images, others


def is_image(path: Path) -> bool:
    """True when the file's extension or its first bytes name a format pixfit reads."""
    return _is_image_in(Folder(path.parent), path.name)


def _is_image_in(tree: Tree, name: str) -> bool:
    if BY_EXTENSION.get(PurePosixPath(name).suffix[1:].lower()) in INPUTS:
        return True
    try:
        head = tree.head(name, _SNIFFED_BYTES)
    except (OSError, PixfitError):
        return True  # unreadable: let the render report why, as a failure
    return guess(head) is not None


# Enough for every signature in the registry (AVIF's "????ftypavif" is the longest).
_SNIFFED_BYTES = 32
# Every extension an output may have: it depends on the source (format=auto gives PNG
# for alpha), so freshness looks at each.
_OUTPUT_EXTENSIONS = sorted(set(EXTENSIONS.values()))


def _is_fresh(out: Tree, existing: set[str], task: Task) -> bool:
    names = (task.output(ext) for ext in _OUTPUT_EXTENSIONS)
    return any(name in existing and out.has_output(name, task.source) for name in names)


def _render_one(
    task: Task,
    sources: Tree,
    out: Tree,
    hints: Mapping[str, str],
    config: Config,
    exhaustive: bool,
) -> tuple[Task, int, str | None]:
    """Render and write one output; the error message, if any, instead of raising."""
    try:
        data = sources.read(task.source.name, config.source.max_source_bytes)
        rendered = render(
            data, task.variant.options, hints=hints, config=config, exhaustive=exhaustive
        )
        extension = EXTENSIONS[rendered.media_type]
        out.write(task.output(extension), rendered.data, task.source)
        # An edited source may now render to another format: drop the stale sibling.
        out.remove([task.output(ext) for ext in _OUTPUT_EXTENSIONS if ext != extension])
    except PixfitError as error:
        return task, 0, f"{error.title.lower()}: {error}"
    except OSError as error:
        return task, 0, f"{error.strerror}: {error.filename}"
    except pyvips.Error as error:
        # A file libvips chokes on past the checks pixfit makes is still just a bad file.
        return task, 0, f"libvips: {error.message.strip()}"
    return task, len(rendered.data), None


def _table(summary: Summary) -> Table:
    # One row per figure: a row of eight columns squeezes into "render…" and "1,260,7…"
    # on an 80-column terminal.
    table = Table(title="pixfit batch", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for field in fields(summary):
        table.add_row(field.name.replace("_", " "), f"{getattr(summary, field.name):,}")
    return table
