"""The library entry point: source bytes plus a plan in, the fitted image out."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import pyvips

from pixfit.budget import fit_budget
from pixfit.config import Config, LimitsConfig
from pixfit.errors import BadOption, NotFound, RenderTooLarge, TooLarge
from pixfit.formats import Encoder
from pixfit.geometry import Geometry, oriented, resolve
from pixfit.hints import ClientHints
from pixfit.masters import Masters
from pixfit.memory import MIB, RenderSize, render_bytes
from pixfit.options import Options, parse_options
from pixfit.pipeline import (
    COARSE_DECODE_QUALITY,
    Job,
    SourceInfo,
    decode,
    decode_animation,
    inspect,
)
from pixfit.planner import Plan, animated_output, choose_outputs, plan
from pixfit.profiles import NetworkClass
from pixfit.registry import FORMATS, ImageFormat
from pixfit.search import MAX_SEARCHED_PIXELS, budget_edge, choose, start_quality

__all__ = [
    "Animation",
    "Rendered",
    "Timings",
    "check_render_size",
    "configure",
    "limit_malloc_arenas",
    "render",
    "render_plan",
]

_configured = False


def configure() -> None:
    """Set libvips up for serving; the entry points call it, and the first render does too.

    One libvips thread per render and no operation cache (measured: most throughput);
    parallelism comes from one worker thread or process per core instead. An operator's
    own VIPS_CONCURRENCY wins. Nothing of this happens at import, so importing pixfit
    never changes the libvips of a host application that has not rendered yet.
    """
    global _configured  # noqa: PLW0603 (one process-wide libvips to set up once)
    if "VIPS_CONCURRENCY" not in os.environ:
        pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    # Loaders libvips itself marks untrusted (Magick, MATLAB, FITS...) stay off even if
    # the format sniffing in formats.py were ever bypassed.
    pyvips.block_untrusted_set(True)
    _configured = True


# glibc's mallopt parameter for the arena count. Many arenas fragment badly with libvips'
# threads; two is the usual fix (the MALLOC_ARENA_MAX=2 advice, applied after start-up,
# where the environment variable would come too late).
_M_ARENA_MAX = -8


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at two, for a process that serves renders on many threads.

    For processes pixfit owns (`create_app`, gunicorn workers), not for a host application.
    Under mod_wsgi without it (issue 14's bench), a worker spent about 10% more CPU per
    W1 render than under `pixfit serve` and the process tree's peak PSS was 1.4-1.7x.
    """
    path = ctypes.util.find_library("c")
    if path:
        ctypes.CDLL(path).mallopt(_M_ARENA_MAX, 2)


class Animation(StrEnum):
    """What became of an animated source (the `X-Pixfit-Animation` header)."""

    ANIMATED = "animated"  # every frame, with its delays and loop count
    STILL = "still"  # one frame: asked for, or no output format or budget could carry more


@dataclass(frozen=True, slots=True)
class Timings:
    """Milliseconds spent per stage."""

    decode_ms: float  # decode, resize and colour steps together
    encode_ms: float  # every encode of the budget search


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished image and how it was made."""

    data: bytes
    media_type: str
    width: int
    height: int
    network: NetworkClass
    # Encoder quality chosen; None when the source bytes were passed through.
    quality: int | None
    # The byte budget and whether it was met; None when there was no budget.
    budget: int | None
    budget_met: bool | None
    timings: Timings
    # The server's perceptual score of the output at the display size (SSIMULACRA2
    # scale); None when nothing was searched (passthrough, a pinned `q`, PNG). For an
    # animation, frame 0's.
    score: float | None = None
    # For an animated source, whether it was sent animated or as a still; None for a still
    # source and for passthrough.
    animation: Animation | None = None


def render_plan(
    data: bytes,
    plan: Plan,
    limits: LimitsConfig,
    *,
    masters: Masters | None = None,
    identity: str = "",
) -> Rendered:
    """Render source bytes by a plan (the serving core's entry point).

    With `masters` and the source's `identity`, variants of one JPEG share one decode.
    """
    if not _configured:
        configure()
    start = time.perf_counter()
    info = inspect(data, limits)
    if plan.passthrough:
        return Rendered(
            data, FORMATS[info.format].media_type, info.width, info.height, plan.network,
            None, None, None, Timings(0.0, 0.0),
        )  # fmt: skip
    frames = info.frames if info.animated else 1
    if plan.page >= frames:
        raise BadOption(f"Expected a frame 0..{frames - 1} for page but received {plan.page}")
    caps = plan.caps
    # The box and caps are of the output, so a quarter turn swaps the source's sides.
    width, height = (
        (info.height, info.width) if plan.rotate in (90, 270) else (info.width, info.height)
    )
    if plan.budget is not None and plan.target is not None:
        # No display wider than the budget can pay for: it would only cost decode time.
        edge = budget_edge(plan.budget, width, height)
        caps = replace(caps, max_edge=min(edge, caps.max_edge or edge))
    geometry = resolve(
        width, height, plan.box_width, plan.box_height, plan.fit, caps, enlarge=plan.enlarge
    )
    deadline = time.monotonic() + limits.render_timeout
    animation = None
    if info.animated:
        output = animated_output(plan, info.format)
        if output:  # every frame is held at the display size, then encoded together
            check_render_size(info, geometry, (output,), plan, limits, frames=info.frames)
        moving = _animated(data, info, geometry, plan, output, limits, deadline) if output else None
        if moving is not None:
            return _rendered(moving, plan, start, Animation.ANIMATED)
        animation = Animation.STILL
    outputs = choose_outputs(plan, info.format, info.has_alpha)
    check_render_size(info, geometry, outputs, plan, limits)
    job = _job(plan, geometry, outputs)
    # Decoded once, at the display size: every candidate is a resize or an encode of this.
    image = decode(data, info, job, deadline, masters, identity, page=plan.page)
    decoded = time.perf_counter()
    chosen = _encode(image, plan, outputs, deadline)
    return _rendered(replace(chosen, decoded=decoded), plan, start, animation)


def _job(plan: Plan, geometry: Geometry, outputs: Sequence[ImageFormat]) -> Job:
    """What every step reads (for an animation, every frame alike); outputs[0] is made."""
    coarse = plan.quality_max == plan.quality_min <= COARSE_DECODE_QUALITY and all(
        FORMATS[output].lossy for output in outputs
    )
    return Job(
        geometry, oriented(plan.gravity, plan.rotate, plan.flip), outputs[0], plan.background,
        rotate=plan.rotate, flip=plan.flip, blur=plan.blur, sharpen=plan.sharpen,
        coarse_decode=coarse,
    )  # fmt: skip


def _rendered(chosen: _Chosen, plan: Plan, start: float, animation: Animation | None) -> Rendered:
    return Rendered(
        data=chosen.data,
        media_type=FORMATS[chosen.format].media_type,
        width=chosen.width,
        height=chosen.height,
        network=plan.network,
        quality=chosen.quality,
        budget=plan.budget,
        budget_met=chosen.budget_met,
        timings=Timings(
            decode_ms=(chosen.decoded - start) * 1000,
            encode_ms=(time.perf_counter() - chosen.decoded) * 1000,
        ),
        score=chosen.score,
        animation=animation,
    )


def _animated(
    data: bytes,
    info: SourceInfo,
    geometry: Geometry,
    plan: Plan,
    output: ImageFormat,
    limits: LimitsConfig,
    deadline: float,
) -> _Chosen | None:
    """The animation in `output`, or None when it cannot reach the target within the budget.

    The quality is the one frame 0 needs to reach the class's target (searched at the
    display size), and every frame is encoded at it. The animation is never shrunk to fit a
    budget (DESIGN): if it is over, the answer is a still, which the caller renders.
    """
    pixels = geometry.width * geometry.height * info.frames
    if pixels > limits.max_animation_pixels:
        raise TooLarge(
            f"Expected at most {limits.max_animation_pixels} pixels in all output frames "
            f"together (limits.max_animation_pixels) but {info.frames} frames of "
            f"{geometry.width}x{geometry.height} were asked for"
        )
    strip = decode_animation(data, info, _job(plan, geometry, (output,)), deadline)
    decoded = time.perf_counter()
    encoder = Encoder(output)
    quality, score = plan.quality_max, None
    if plan.target is not None and FORMATS[output].lossy:
        first = strip.crop(0, 0, strip.width, geometry.height).copy_memory()
        if first.width * first.height > MAX_SEARCHED_PIXELS and not plan.exhaustive:
            quality = max(plan.quality_min, min(quality, start_quality(output, plan.target)))
        else:
            choice = choose(
                first, [encoder], budget=None, target=plan.target,
                quality_min=plan.quality_min, quality_max=plan.quality_max,
                exhaustive=plan.exhaustive, deadline=deadline,
            )  # fmt: skip
            if plan.budget is not None and len(choice.best.data) > plan.budget:
                return None  # frame 0 alone is over: the animation is too
            quality, score = choice.best.quality, choice.best.score
    encoded = encoder.encode(strip, quality)
    if plan.budget is not None and len(encoded) > plan.budget:
        return None
    met = None if plan.budget is None else True
    return _Chosen(encoded, output, quality, geometry.width, geometry.height, met, score, decoded)


def check_render_size(
    info: SourceInfo,
    geometry: Geometry,
    outputs: tuple[ImageFormat, ...],
    plan: Plan,
    limits: LimitsConfig,
    *,
    frames: int = 1,
) -> None:
    """Refuse, before decoding, a render over max_output_pixels or max_render_memory.

    `frames` is how many output frames are held at once (an animation's, else 1).
    """
    # Only the final image is held whole: the resize before a crop streams through it.
    pixels = geometry.width * geometry.height
    size = f"{geometry.width}x{geometry.height}"
    if pixels > limits.max_output_pixels:
        raise RenderTooLarge(
            f"Expected at most {limits.max_output_pixels} output pixels "
            f"(limits.max_output_pixels) but this render is {size}; ask for a smaller size"
        )
    searched = plan.target is not None and (plan.exhaustive or pixels <= MAX_SEARCHED_PIXELS)
    needed = render_bytes(RenderSize(info.held_bytes, pixels * frames, outputs, searched))
    if needed > limits.max_render_memory:
        label = FORMATS[outputs[0]].label
        raise RenderTooLarge(
            f"Expected a render within {limits.max_render_memory // MIB} MiB "
            f"(limits.max_render_memory) but {size} as {label} needs about "
            f"{needed // MIB} MiB; ask for a smaller size or another format"
        )


@dataclass(frozen=True, slots=True)
class _Chosen:
    data: bytes
    format: ImageFormat
    quality: int
    width: int
    height: int
    budget_met: bool | None
    score: float | None
    # When decoding ended (perf_counter), for the timings.
    decoded: float = 0.0


def _encode(
    image: pyvips.Image, plan: Plan, outputs: tuple[ImageFormat, ...], deadline: float
) -> _Chosen:
    """The encode to send: searched for the plan's target, or at its pinned quality."""
    encoders = [Encoder(f, palette=plan.palette, progressive=plan.progressive) for f in outputs]
    quality_max, quality_min = plan.quality_max, plan.quality_min
    huge = image.width * image.height > MAX_SEARCHED_PIXELS and not plan.exhaustive
    if plan.target is not None and huge:
        # Too large to search: one encode at the quality that reaches the target on average.
        start = start_quality(outputs[0], plan.target)
        quality_max = max(quality_min, min(quality_max, start))
    elif plan.target is not None and FORMATS[outputs[0]].lossy:
        return _searched(image, plan, encoders, deadline)
    # A pinned quality, a lossless format or a huge display: only the size is left to fit
    # the budget.
    fitted = fit_budget(
        image, encoders[0], quality_max, quality_min, plan.budget, deadline=deadline
    )
    best = fitted.best
    return _Chosen(
        best.data, outputs[0], best.quality, best.width, best.height, fitted.budget_met, None
    )


def _searched(image: pyvips.Image, plan: Plan, encoders: list[Encoder], deadline: float) -> _Chosen:
    """The joint search's pick for the plan's target and budget."""
    assert plan.target is not None
    choice = choose(
        image, encoders, budget=plan.budget, target=plan.target,
        quality_min=plan.quality_min, quality_max=plan.quality_max,
        exhaustive=plan.exhaustive, deadline=deadline,
    )  # fmt: skip
    top = choice.best
    return _Chosen(
        top.data, top.format, top.quality, top.width, top.height, choice.budget_met, top.score
    )


def render(
    data_or_path: bytes | str | Path,
    options: Options | Mapping[str, object] | None = None,
    *,
    hints: ClientHints | Mapping[str, str] | None = None,
    config: Config | None = None,
    exhaustive: bool = False,
) -> Rendered:
    """Render an image (bytes or a file path) with options and client hints; pure, no globals.

    `options` may be an `Options` or a mapping like a query string (`{"w": 400, "bw": "3g"}`);
    `hints` may be a `ClientHints` or a mapping of request headers. `exhaustive` searches
    every width, format and quality for the best answer, where time does not matter.
    """
    config = config or Config()
    data = _read(data_or_path, config.source.max_source_bytes)
    if not isinstance(options, Options):
        options = parse_options(
            {key: str(value) for key, value in (options or {}).items()},
            max_edge=config.limits.max_output_edge,
            strict=config.security.strict_options,
            presets=config.presets,
        )
    if not isinstance(hints, ClientHints):
        hints = ClientHints.from_headers(hints or {})
    planned = plan(options, hints, config)
    if exhaustive:
        planned = replace(planned, exhaustive=True)
    return render_plan(data, planned, config.limits)


def _read(data_or_path: bytes | str | Path, max_bytes: int) -> bytes:
    if isinstance(data_or_path, bytes | bytearray | memoryview):
        data = bytes(data_or_path)
    else:
        try:
            with open(data_or_path, "rb") as handle:
                data = handle.read(max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(f"No image at {os.fspath(data_or_path)!r}") from None
    if len(data) > max_bytes:
        raise TooLarge(f"Expected at most {max_bytes} source bytes but the source is larger")
    return data
