"""`pixfit batch` on threads against a Dask cluster of 2 worker processes, on this machine.

    PYTHONPATH=src .venv/bin/python bench/batch_dask.py [--photos 12] [--rounds 2]

The photos are Debian wallpapers (1920x1080 JPEGs; apt-get install
plasma-workspace-wallpapers), else generated ones. Each run renders every photo for
w=320,640,1280 x format=webp,jpeg (6 outputs a photo) with --force, by the CLI in a child
process: threads with --jobs 2, then --scheduler on a local `dask scheduler` and two
`dask worker --nthreads 1` processes (started once, as the tests do). The table gives
outputs per second (median of the rounds, wall time of the command, cluster start-up left
out) and the peak RSS of the threaded command and of each Dask worker (the command that
submits to the cluster only lists and reports). The 2 cores are
shared with other jobs: compare the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests/daskcluster.py

import pyvips  # noqa: E402
from distributed import Client  # noqa: E402

from tests.daskcluster import dask_cluster  # noqa: E402

WALLPAPERS = Path("/usr/share/wallpapers")
VARIANTS = "w=320,640,1280;format=webp,jpeg"
OUTPUTS_PER_PHOTO = 6


def photos(folder: Path, count: int) -> int:
    found = sorted(WALLPAPERS.glob("*/contents/images/1920x1080.jpg"))[:count]
    for number, path in enumerate(found):
        (folder / f"p{number}.jpg").write_bytes(path.read_bytes())
    for number in range(len(found), count):
        xy = pyvips.Image.xyz(1920, 1080)
        image = (xy[0] * (0.1 + number / 50) + xy[1] * 0.1).cast("uchar")
        image.jpegsave(str(folder / f"p{number}.jpg"), Q=90)
    return count


def batch(src: Path, out: Path, *extra: str) -> tuple[float, float]:
    """Seconds the command took, and its peak RSS in MiB."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "pixfit.cli", "batch", str(src), str(out),
               "--variants", VARIANTS, "--force", *extra]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed with {process.returncode}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        src = work / "src"
        src.mkdir()
        outputs = photos(src, args.photos) * OUTPUTS_PER_PHOTO
        threads: list[float] = []
        dask: list[float] = []
        thread_peak = 0.0
        with dask_cluster(work, workers=2) as address:
            for _ in range(args.rounds):  # taking turns, so both see the same noise
                seconds, peak = batch(src, work / "threads", "--jobs", "2")
                threads.append(seconds)
                thread_peak = max(thread_peak, peak)
                dask.append(batch(src, work / "dask", "--scheduler", address)[0])
            with Client(address, timeout=30) as client:
                peaks = client.run(peak_rss_mib)
        same = all(
            (work / "threads" / path.relative_to(work / "dask")).read_bytes() == path.read_bytes()
            for path in (work / "dask").rglob("*")
            if path.is_file()
        )
    thread_rate = outputs / statistics.median(threads)
    dask_rate = outputs / statistics.median(dask)
    print(f"{args.photos} photos x {OUTPUTS_PER_PHOTO} variants = {outputs} outputs, "
          f"{args.rounds} rounds, medians (noisy shared 2-core machine)")  # fmt: skip
    print(f"threads --jobs 2: {thread_rate:6.2f} outputs/s, peak RSS {thread_peak:.0f} MiB")
    worker_peaks = ", ".join(f"{peak:.0f}" for peak in sorted(peaks.values()))
    print(f"dask, 2 workers:  {dask_rate:6.2f} outputs/s, peak RSS per worker {worker_peaks} MiB")
    print(f"dask / threads: {dask_rate / thread_rate:.2f}x; outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
