"""A seeded mutation fuzzer over image bytes, calling `pixfit.render` in-process.

    .venv/bin/python bench/fuzz.py [--seconds 60 | --iterations N] [--seed 0]

Seeds are small valid JPEG, PNG, WebP, GIF, AVIF and HEIC images, animated GIF and WebP
among them (tests/hostile.py).
Each iteration mutates one of them (bit flips, byte insert/delete, chunk duplication,
truncation, splice of two seeds, boundary integers) and renders it with one of OPTION_SETS
(`{"w": "200"}`, or that with a turn, a mirror, a focal-point crop, a blur or a sharpen).

The only acceptable outcomes are a decodable image at most 200 px wide, or a
`pixfit.errors.PixfitError` whose status is below 500. Anything else is a finding, saved
to bench/findings/ (git-ignored) and printed: another exception, a 5xx error (503 included:
an idle render has no reason to run past its deadline), an undecodable or oversized output,
a render slower than --slow seconds, or a crash or hang of the process.

The fuzzing runs in a worker subprocess that writes each input to a file before rendering
it, so a segfault or a hang in a decoder costs one restart and the input is kept. Runs are
reproducible: the worker's seed and iteration number name every input.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests/hostile.py

import pyvips  # noqa: E402

import pixfit  # noqa: E402
from pixfit.errors import PixfitError  # noqa: E402
from tests import hostile  # noqa: E402

FINDINGS = HERE / "findings"
OPTIONS = {"w": "200"}
# Every set keeps the output at most 200 px wide, which _check_output checks.
OPTION_SETS = (
    OPTIONS,
    {**OPTIONS, "rotate": "90", "flip": "h"},
    {**OPTIONS, "h": "150", "fit": "cover", "pos": "fp:0.3,0.7", "sharpen": "1"},
    {**OPTIONS, "rotate": "270", "blur": "3"},
)
# The supervisor kills a worker whose current input has not changed for this long (the
# render deadline is 20 s, so anything far past it is a hang).
HANG_SECONDS = 60.0


def outcome(data: bytes, slow: float, options: dict[str, str] = OPTIONS) -> tuple[str, str | None]:
    """Render `data`; return (label, problem). `problem` is None when the outcome is fine."""
    started = time.monotonic()
    try:
        rendered = pixfit.render(data, options)
    except PixfitError as error:
        label = str(error.status)
        problem = None if error.status < 500 else f"{type(error).__name__} {error.status}: {error}"
    except Exception as error:  # a finding: every failure must be a PixfitError below 500
        label = type(error).__name__
        problem = "".join(traceback.format_exception(error))
    else:
        label, problem = "200", _check_output(rendered)
    elapsed = time.monotonic() - started
    if problem is None and elapsed > slow:
        label, problem = "slow", f"render took {elapsed:.1f} s (status {label})"
    return label, problem


def _check_output(rendered: pixfit.Rendered) -> str | None:
    try:
        image = pyvips.Image.new_from_buffer(rendered.data, "")
        image.avg()  # decode every pixel
    except pyvips.Error as error:
        return f"200 with an undecodable {rendered.media_type}: {error}"
    if (image.width, image.height) != (rendered.width, rendered.height) or image.width > 200:
        return (
            f"200 with a {image.width}x{image.height} image, reported as "
            f"{rendered.width}x{rendered.height}, for w=200"
        )
    return None


def findings_folder() -> Path:
    """bench/findings/, made git-ignored by a .gitignore of its own."""
    FINDINGS.mkdir(exist_ok=True)
    ignore = FINDINGS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return FINDINGS


def save_finding(data: bytes, kind: str, problem: str, provenance: str) -> Path:
    """Write the input and its story to bench/findings/, named by content hash."""
    findings_folder()
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = FINDINGS / f"{kind}-{digest}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(f"{provenance}\n{len(data)} bytes\n\n{problem}\n")
    return path


def worker(seed: int, seconds: float, iterations: int | None, inflight: Path, slow: float) -> None:
    """Fuzz until the time or iteration budget runs out; print a JSON summary on stdout."""
    rng = random.Random(seed)
    pool = hostile.seeds()
    names = sorted(pool)
    labels: Counter[str] = Counter()
    findings = []
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline and (iterations is None or count < iterations):
        name = rng.choice(names)
        data, applied = hostile.mutate(rng, pool[name], list(pool.values()))
        options = rng.choice(OPTION_SETS)
        provenance = (
            f"seed={seed} iteration={count} from={name} mutations={','.join(applied)} "
            f"options={options}"
        )
        inflight.write_bytes(data)
        inflight.with_suffix(".txt").write_text(provenance)
        label, problem = outcome(data, slow, options)
        labels[label] += 1
        count += 1
        if problem is not None:
            path = save_finding(data, "error", problem, provenance)
            findings.append({"path": str(path), "provenance": provenance, "problem": problem})
            print(f"FINDING {path}\n  {provenance}\n  {problem}", file=sys.stderr, flush=True)
    inflight.unlink(missing_ok=True)
    summary = {"iterations": count, "labels": dict(labels), "findings": findings}
    print(json.dumps(summary), flush=True)


def supervise(args: argparse.Namespace) -> int:
    """Run workers until the budget is spent, restarting after crashes and hangs."""
    findings_folder()
    # Rewritten before every render: on tmpfs that costs microseconds, on ext4 milliseconds.
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    inflight = scratch / f"pixfit-fuzz-inflight-{os.getpid()}.bin"
    started = time.monotonic()
    end = started + args.seconds
    total = 0
    labels: Counter[str] = Counter()
    findings: list[dict[str, Any]] = []
    restarts = 0
    while time.monotonic() < end and (args.iterations is None or total < args.iterations):
        seed = args.seed + 1_000_003 * restarts
        command = [
            sys.executable, __file__, "--worker", "--seed", str(seed),
            "--seconds", f"{end - time.monotonic():.3f}", "--slow", str(args.slow),
            "--inflight", str(inflight),
        ]  # fmt: skip
        if args.iterations is not None:
            command += ["--iterations", str(args.iterations - total)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        crash = _watch(child, inflight, end)
        out = child.stdout.read() if child.stdout else ""
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if lines:
            summary = json.loads(lines[-1])
            total += summary["iterations"]
            labels.update(summary["labels"])
            findings += summary["findings"]
        if crash is not None:
            restarts += 1
            data = inflight.read_bytes() if inflight.exists() else b""
            provenance = (
                inflight.with_suffix(".txt").read_text() if inflight.exists() else f"seed={seed}"
            )
            path = save_finding(data, crash.split()[0], crash, provenance)
            findings.append({"path": str(path), "provenance": provenance, "problem": crash})
            labels[crash.split()[0]] += 1
            print(f"FINDING {path}\n  {provenance}\n  {crash}", file=sys.stderr, flush=True)
    for leftover in (inflight, inflight.with_suffix(".txt")):
        leftover.unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    print(f"\n{total} iterations in {elapsed:.1f} s: {total / elapsed:.1f} iterations/s")
    print(f"worker restarts after a crash or hang: {restarts}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in labels.most_common()))
    print(f"findings: {len(findings)}")
    for finding in findings:
        print(f"  {finding['path']}  ({finding['provenance']})")
        print("    " + finding["problem"].strip().splitlines()[-1])
    return 1 if findings else 0


def _watch(child: subprocess.Popen[str], inflight: Path, end: float) -> str | None:
    """Wait for the worker; return "crash ..." or "hang ..." if it died or stuck."""
    last_change = time.monotonic()
    last_stamp: float | None = None
    while child.poll() is None:
        time.sleep(0.5)
        try:
            stamp = inflight.stat().st_mtime
        except FileNotFoundError:
            stamp = None
        if stamp != last_stamp:
            last_stamp, last_change = stamp, time.monotonic()
        stuck = time.monotonic() - last_change
        if stuck > HANG_SECONDS or time.monotonic() > end + HANG_SECONDS:
            child.kill()
            child.wait()
            return f"hang: one input ran for over {stuck:.0f} s"
    if child.returncode < 0:
        return f"crash: the worker died with signal {-child.returncode}"
    if child.returncode != 0:
        return f"crash: the worker exited with status {child.returncode}"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--iterations", type=int, help="stop after this many inputs")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--slow", type=float, default=10.0, help="a render slower than this is a finding"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inflight", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations is not None and "--seconds" not in sys.argv:
        args.seconds = float("inf")
    if args.worker:
        worker(args.seed, args.seconds, args.iterations, args.inflight, args.slow)
        return 0
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main())
