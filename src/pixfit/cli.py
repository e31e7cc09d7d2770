"""The `pixfit` command: render, batch, serve, sign and config."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import tomli_w

from pixfit import batch
from pixfit.config import Config, ConfigError
from pixfit.errors import PixfitError
from pixfit.options import ALIASES, OPTIONS
from pixfit.rendering import configure, render
from pixfit.serve import run_server
from pixfit.signing import sign_url

__all__ = [
    "OPTION_FLAGS",
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


def _option_flags() -> dict[str, tuple[list[str], str]]:
    """Each option's and alias's flag spellings and help, keyed by its query name.

    An alias gets its own flag rather than argparse's alias, so that giving both is
    refused as in a URL; one that only differs by "-" for "_" (`max-bytes`) is already
    a spelling of its option's flag.
    """
    flags: dict[str, tuple[list[str], str]] = {}
    taken: set[str] = set()
    named = [(name, spec.help) for name, spec in OPTIONS.items()]
    named += [(alias, f"Same as --{name}.") for alias, name in ALIASES.items()]
    for name, help_text in named:
        spellings = sorted({f"--{name}", f"--{name.replace('_', '-')}"} - taken)
        if spellings:
            flags[name] = (spellings, help_text)
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
    for name, (spellings, help_text) in OPTION_FLAGS.items():
        group.add_argument(*spellings, dest=name, metavar="VALUE", help=help_text)
    group.add_argument(
        "--accept",
        metavar="TYPES",
        help="the Accept header to negotiate `format=auto` with, e.g. image/avif,image/webp",
    )


def _render(args: argparse.Namespace, config: Config) -> int:
    headers = {"Accept": args.accept} if args.accept else {}
    rendered = render(
        Path(args.input), option_args(args), hints=headers, config=config,
        exhaustive=args.exhaustive,
    )  # fmt: skip
    if args.output == "-":
        sys.stdout.buffer.write(rendered.data)
        sys.stdout.buffer.flush()
    else:
        Path(args.output).write_bytes(rendered.data)
    budget = (
        f"budget {rendered.budget} {'met' if rendered.budget_met else 'exceeded'}"
        if rendered.budget
        else "no budget"
    )
    print(
        f"{args.output}: {rendered.width}x{rendered.height} {rendered.media_type}, "
        f"{len(rendered.data)} bytes, class {rendered.network}, quality {rendered.quality}, "
        f"{budget}{_scored(rendered.score)}",
        file=sys.stderr,
    )
    return 0


def _scored(score: float | None) -> str:
    return "" if score is None else f", score {score:.1f}"


def _batch(args: argparse.Namespace, config: Config) -> int:
    variants = batch.parse_variants(args.variants, option_args(args), config)
    headers = {"Accept": args.accept} if args.accept else {}
    summary = batch.run_batch(
        Path(args.src_dir), Path(args.out_dir), variants, config,
        hints=headers, jobs=args.jobs, force=args.force, exhaustive=args.exhaustive,
    )  # fmt: skip
    return 1 if summary.failed else 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    # Flags beat the environment, which beats the file: apply them last.
    server = {key: getattr(args, key) for key in ("host", "port", "workers") if getattr(args, key)}
    overrides: dict[str, object] = {"server": server}
    if args.root:
        overrides["source"] = {"root": args.root}
    run_server(config.merged(overrides))
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
    render_cmd.add_argument("input", help="source image file")
    render_cmd.add_argument("-o", "--output", required=True, help="output file, or - for stdout")
    add_option_flags(render_cmd)
    _add_exhaustive(render_cmd)

    batch_cmd = command("batch", _batch, "pre-render every image under a folder")
    batch_cmd.epilog = batch.__doc__
    batch_cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    batch_cmd.add_argument("src_dir", metavar="SRC_DIR", help="folder of source images")
    batch_cmd.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the variants to")
    batch_cmd.add_argument(
        "--variants",
        metavar="LIST",
        help='every combination of the values, e.g. "w=320,640;format=webp,jpeg" '
        '(";" separates options, "," values); the flags below apply to each',
    )
    batch_cmd.add_argument("--jobs", type=int, help="renders at once (default: one per core)")
    batch_cmd.add_argument("--force", action="store_true", help="re-render up-to-date outputs")
    add_option_flags(batch_cmd)
    _add_exhaustive(batch_cmd)

    serve_cmd = command("serve", _serve, "serve images over HTTP with gunicorn")
    serve_cmd.add_argument("--root", help="folder of images to serve")
    serve_cmd.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="port to bind (default 8080)")
    serve_cmd.add_argument("--workers", type=int, help="worker processes (default: one per core)")

    sign_cmd = command("sign", _sign, "print URL signed with the first of security.signing_keys")
    sign_cmd.add_argument(
        "url", help="an image URL, absolute or a path such as /images/a.jpg?w=300"
    )

    command("config", _config, "print the effective configuration as TOML")
    return parser


if __name__ == "__main__":
    sys.exit(main())
