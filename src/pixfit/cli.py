"""The `pixfit` command: render, batch, serve, purge, sign and config."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from pixfit import batch
from pixfit.cache import make_cache
from pixfit.config import CacheKind, Config, ConfigError, SourceStore
from pixfit.errors import BadOption, PixfitError
from pixfit.options import ALIASES, OPTIONS, PRESET, parse_options
from pixfit.registry import (
    BY_EXTENSION,
    BY_MEDIA_TYPE,
    OUTPUTS,
    Format,
    ImageFormat,
    OutputFormat,
    listed,
)
from pixfit.rendering import Animation, Rendered, configure, render
from pixfit.serve import restart_for_serving, run_server
from pixfit.service import SourceKind, source_tag
from pixfit.signing import sign_url

__all__ = [
    "OPTION_FLAGS",
    "OptionFlag",
    "add_option_flags",
    "main",
    "option_args",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    configure()
    try:
        config = Config.load(os.environ, args.config)
        return int(args.handler(args, config))
    except ConfigError as error:
        print(f"pixfit: configuration error: {error}", file=sys.stderr)
        return 2
    except PixfitError as error:
        print(f"pixfit: {error.title.lower()}: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `pixfit render ... -o - | head`: the reader left; nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        # A path the user gave that cannot be read or written: one line naming it.
        where = f": {error.filename}" if error.filename else ""
        print(f"pixfit: {(error.strerror or str(error)).lower()}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


@dataclass(frozen=True, slots=True)
class OptionFlag:
    """How one option (or alias) of the URL API is spelled and explained on the command line."""

    spellings: tuple[str, ...]
    metavar: str
    help: str


def _option_flags() -> dict[str, OptionFlag]:
    """Each option's and alias's flag, keyed by its query name, from the option table.

    An alias gets its own flag rather than argparse's alias, so that giving both is
    refused as in a URL; one that only differs by "-" for "_" (`max-bytes`) is already
    a spelling of its option's flag.
    """
    flags: dict[str, OptionFlag] = {}
    taken: set[str] = set()
    named = [(name, spec.shown_as, spec.help) for name, spec in OPTIONS.items()]
    named += [
        (alias, OPTIONS[name].shown_as, f"Same as --{name}.") for alias, name in ALIASES.items()
    ]
    named += [
        (
            PRESET,
            "NAME",
            "A named option set, [presets.NAME] in the config; other flags override it.",
        )
    ]
    for name, metavar, help_text in named:
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"} - taken)
        if spellings:
            flags[name] = OptionFlag(tuple(spellings), metavar, help_text)
            taken.update(spellings)
    return flags


# Every HTTP option is a long flag of the same name; aliases stay aliases.
OPTION_FLAGS = _option_flags()


def option_args(args: argparse.Namespace) -> dict[str, str]:
    """The HTTP options given as flags, keyed by their query names."""
    given = {name: getattr(args, name) for name in OPTION_FLAGS}
    return {name: value for name, value in given.items() if value is not None}


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """Add one long flag per HTTP option (`--max-bytes` also spelled `--max_bytes`)."""
    group = parser.add_argument_group("image options (as in the URL API)")
    for name, flag in OPTION_FLAGS.items():
        group.add_argument(*flag.spellings, dest=name, metavar=flag.metavar, help=flag.help)
    group.add_argument(
        "--accept",
        metavar="TYPES",
        help="the Accept header that format=auto negotiates with, e.g. image/avif,image/webp "
        "(default none: auto then gives JPEG, or PNG for alpha)",
    )


def _render(args: argparse.Namespace, config: Config) -> int:
    headers = {"Accept": args.accept} if args.accept else {}
    flags = option_args(args)
    named = None if args.output == "-" else BY_EXTENSION.get(Path(args.output).suffix[1:].lower())

    def rendered_with(options: dict[str, str]) -> Rendered:
        return render(
            Path(args.input), options, hints=headers, config=config, exhaustive=args.exhaustive
        )

    if named is not None and not {"format", "f"} & flags.keys():
        # The file name chooses the format. With no option at all, a source already in
        # that format is copied untouched (a passthrough costs only a header read).
        result = None if flags else rendered_with({})
        if result is None or BY_MEDIA_TYPE[result.media_type].name != named.name:
            result = rendered_with({**flags, "format": _writable(named, args.output)})
    else:
        _check_format_flag(flags, named, args.output, config)
        result = rendered_with(flags)
    written = BY_MEDIA_TYPE[result.media_type]
    if named is not None and written.name != named.name:
        raise BadOption(
            f"Expected {named.label} for {args.output!r} (its name says so) but the output "
            f"is {written.label}; name it .{written.extensions[0]} or drop --format"
        )
    if args.output == "-":
        sys.stdout.buffer.write(result.data)
        sys.stdout.buffer.flush()
    else:
        _write(Path(args.output), result.data)
    print(f"{args.output}: {_described(result)}", file=sys.stderr)
    return 0


def _write(path: Path, data: bytes) -> None:
    # Missing folders are made, as `batch` makes OUT_DIR.
    batch.make_folder(path.parent)
    path.write_bytes(data)


def _writable(named: Format, output: str) -> str:
    """The `format` value for a file name's format, or BadOption for one pixfit only reads."""
    if not named.is_output:
        raise BadOption(
            f"Expected an output file name for {listed(OUTPUTS)} but received {output!r}: "
            f"pixfit reads {named.label} but does not write it"
        )
    return str(named.name)


def _check_format_flag(
    flags: Mapping[str, str], named: Format | None, output: str, config: Config
) -> None:
    """Refuse `--format X` with a file name of another format before rendering anything."""
    if named is None:
        return
    asked = parse_options(flags, max_edge=config.limits.max_output_edge).format
    if asked in (None, OutputFormat.AUTO, OutputFormat.ORIGINAL):
        return  # checked against what was rendered instead
    if ImageFormat(asked) != named.name:
        raise BadOption(
            f"Expected --format {named.name} for {output!r} but received --format {asked}: "
            "the file name and the flag disagree"
        )


def _described(result: Rendered) -> str:
    """The one-line summary of a render: size, type, bytes, class, quality, budget, score."""
    budget = (
        f"budget {result.budget} {'met' if result.budget_met else 'exceeded'}"
        if result.budget
        else "no budget"
    )
    # No quality when the source's bytes were sent untouched: say so, as X-Pixfit-Quality does.
    quality = "original" if result.quality is None else result.quality
    return (
        f"{result.width}x{result.height} {result.media_type}, {len(result.data)} bytes, "
        f"class {result.network}, quality {quality}, {budget}{_scored(result.score)}"
        f"{_animation(result)}"
    )


def _animation(result: Rendered) -> str:
    if result.animation is None:
        return ""
    return ", animated" if result.animation == Animation.ANIMATED else ", still of an animation"


def _scored(score: float | None) -> str:
    return "" if score is None else f", score {score:.1f}"


def _batch(args: argparse.Namespace, config: Config) -> int:
    variants = batch.parse_variants(args.variants, option_args(args), config)
    headers = {"Accept": args.accept} if args.accept else {}
    summary = batch.run_batch(
        args.src_dir, args.out_dir, variants, config, hints=headers, jobs=args.jobs,
        force=args.force, exhaustive=args.exhaustive, scheduler=args.scheduler,
    )  # fmt: skip
    return 1 if summary.failed else 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    # Flags beat the environment, which beats the file: apply them last.
    server = {key: getattr(args, key) for key in ("host", "port", "workers") if getattr(args, key)}
    overrides: dict[str, object] = {"server": server}
    if args.root:
        overrides["source"] = {"root": args.root}
    config = config.merged(overrides)
    # Here rather than on every request: a server over a missing folder only answers 404s.
    if config.source.kind == SourceStore.LOCAL and not config.source.root.is_dir():
        raise ConfigError(f"source.root must be a folder, got {os.fspath(config.source.root)!r}")
    restart_for_serving()  # once, after the checks: a failed start leaves no folder behind
    run_server(config)
    return 0


def _purge(args: argparse.Namespace, config: Config) -> int:
    if config.cache.kind == CacheKind.MEMORY:
        raise ConfigError(
            "cache.kind memory lives inside each server process: "
            "purge it with POST /_pixfit/purge (security.admin_tokens)"
        )
    kind = SourceKind.URL if args.source.startswith(("http://", "https://")) else SourceKind.PATH
    purged = make_cache(config.cache).purge(source_tag(kind, args.source))
    print(f"pixfit: purged {purged} cached variants of {args.source}", file=sys.stderr)
    return 0


def _sign(args: argparse.Namespace, config: Config) -> int:
    keys = config.security.signing_keys
    if not keys:
        raise ConfigError("security.signing_keys is empty: nothing to sign with")
    print(sign_url(args.url, keys[0]))
    return 0


def _config(args: argparse.Namespace, config: Config) -> int:
    print(tomli_w.dumps(config.as_dict()), end="")
    return 0


Handler = Callable[[argparse.Namespace, Config], int]


def _add_exhaustive(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="search every width, format and quality for the best image the budget buys "
        "(slow: for pre-rendering, not for serving)",
    )


_RENDER_EPILOG = """\
The output's extension (.avif, .webp, .jpg or .jpeg, .png) chooses the format when
--format is not given; a --format that contradicts it is an error. With no option at all,
a source already in that format is copied untouched. With -o - (or another extension),
--format and --accept choose, as in the URL API. The summary on stderr gives the size,
type, bytes, class, quality ("original" when copied), budget and score."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixfit", description="Fit images to the client's box, screen and network."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", metavar="FILE", help="TOML configuration file")
        sub.set_defaults(handler=handler)
        return sub

    render_cmd = command("render", _render, "render one image")
    render_cmd.epilog = _RENDER_EPILOG
    render_cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    render_cmd.add_argument("input", help="source image file")
    render_cmd.add_argument(
        "-o",
        "--output",
        required=True,
        help="output file (folders are made), or - for stdout; its extension chooses the format",
    )
    add_option_flags(render_cmd)
    _add_exhaustive(render_cmd)

    batch_cmd = command("batch", _batch, "pre-render every image under a folder")
    batch_cmd.epilog = batch.__doc__
    batch_cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    batch_cmd.add_argument(
        "src_dir", metavar="SRC_DIR", help="folder of source images, or s3://BUCKET/FOLDER"
    )
    batch_cmd.add_argument(
        "out_dir", metavar="OUT_DIR", help="folder to write the variants to, or s3://BUCKET/FOLDER"
    )
    batch_cmd.add_argument(
        "--variants",
        metavar="LIST",
        help='every combination of the values, e.g. "w=320,640;format=webp,jpeg" '
        '(";" separates options, "," values); the flags below apply to each',
    )
    batch_cmd.add_argument(
        "--jobs", type=int, help="renders at once on threads (default: one per core)"
    )
    batch_cmd.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="render on this dask.distributed scheduler's workers instead of threads",
    )
    batch_cmd.add_argument("--force", action="store_true", help="re-render up-to-date outputs")
    add_option_flags(batch_cmd)
    _add_exhaustive(batch_cmd)

    serve_cmd = command("serve", _serve, "serve images over HTTP with gunicorn")
    serve_cmd.add_argument("--root", help="folder of images to serve")
    serve_cmd.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port to bind (default 8080)")
    serve_cmd.add_argument("--workers", type=int, help="worker processes (default: one per core)")

    purge_cmd = command("purge", _purge, "remove every cached variant of one source")
    purge_cmd.add_argument(
        "source", metavar="PATH|URL", help="a path under the prefix (a.jpg) or a source URL"
    )

    sign_cmd = command("sign", _sign, "print URL signed with the first of security.signing_keys")
    sign_cmd.add_argument(
        "url", help="an image URL, absolute or a path such as /images/a.jpg?w=300"
    )

    command("config", _config, "print the effective configuration as TOML")
    return parser


if __name__ == "__main__":
    sys.exit(main())
