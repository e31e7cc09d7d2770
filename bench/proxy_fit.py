"""Refit pixfit's perceptual proxy against SSIMULACRA2 (a calibration tool, not a test).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/proxy_fit.py [--data bench/proxy_calibration.csv]

`proxy_calibration.csv` holds 342 candidates of 18 of Debian's plasma-workspace-wallpapers, each
shown in a 1280x800 box: JPEG and WebP at q50-95 at full width, AVIF (4:4:4, 10 bits) at q15-90
at 1, 0.7 and 0.5 of it, with the reference `ssimulacra2` package's score of each at the display
size (about 2 s a pair, hence the file). This script re-encodes every candidate with pixfit's own
encoders, skips any whose bytes no longer match (the encoder changed: score it again with
bench/delivery.py's `reference_score`), measures `Reference.errors` at 1/2 to 1/16 of the display
size, and fits:

- the weights, by non-negative least squares of the errors onto SSIMULACRA2's pre-polynomial
  error (its own final polynomial inverted), leaving each photo out in turn for the figures;
- per format, the two inner knots (at 50 and 90) of the correction onto the reference's scale.

It prints them beside the constants in pixfit/perceptual.py, with the mean absolute error and
the rank correlation of each.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
from scipy.optimize import brentq, nnls
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from pixfit.formats import Encoder
from pixfit.perceptual import (
    CORRECTIONS,
    WEIGHTS,
    Reference,
    ssimulacra2_polynomial,
)
from pixfit.registry import ImageFormat

WALLPAPERS = Path("/usr/share/wallpapers")
BOX = (1280, 800)
SCALES = (1, 2, 3, 4)
KNOTS = (0.0, 50.0, 90.0, 100.0)


@dataclass(frozen=True, slots=True)
class Row:
    photo: str
    format: ImageFormat
    errors: dict[int, float]
    reference: float


def measure(data: Path) -> list[Row]:
    rows = list(csv.DictReader(data.open()))
    measured: list[Row] = []
    stale = 0
    for photo in sorted({r["photo"] for r in rows}):
        path = max((WALLPAPERS / photo / "contents/images").glob("*.*"), key=_size)
        display = pyvips.Image.thumbnail(str(path), BOX[0], height=BOX[1]).colourspace("srgb")
        display = display.copy_memory()
        reference = Reference.of(display, SCALES)
        for row in (r for r in rows if r["photo"] == photo):
            width = int(row["width"])
            image = display if width == display.width else display.resize(width / display.width)
            encoded = Encoder(ImageFormat(row["format"])).encode(image, int(row["q"]))
            if len(encoded) != int(row["bytes"]):
                stale += 1
                continue
            candidate = pyvips.Image.new_from_buffer(encoded, "")
            measured.append(
                Row(
                    photo,
                    ImageFormat(row["format"]),
                    reference.errors(candidate),
                    float(row["ssimulacra2"]),
                )
            )
        print(f"  {photo}", file=sys.stderr, flush=True)
    print(f"{len(measured)} candidates measured, {stale} skipped (their bytes changed)")
    return measured


def _size(path: Path) -> int:
    return path.stat().st_size


def inverse_polynomial(score: float) -> float:
    """The pre-polynomial error that SSIMULACRA2's final mapping turns into `score`."""
    score = min(score, 99.99)
    floor = ssimulacra2_polynomial(200.0)
    return (
        brentq(lambda e: ssimulacra2_polynomial(e) - score, 0.0, 200.0) if score > floor else 200.0
    )


def predict(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.array([ssimulacra2_polynomial(float(e)) for e in features @ weights])


def interpolate_basis(x: np.ndarray) -> np.ndarray:
    """Each value's weights on KNOTS under straight-line interpolation."""
    basis = np.zeros((len(x), len(KNOTS)))
    for i, value in enumerate(np.clip(x, KNOTS[0], KNOTS[-1])):
        k = min(int(np.searchsorted(KNOTS, value, side="right")) - 1, len(KNOTS) - 2)
        t = (value - KNOTS[k]) / (KNOTS[k + 1] - KNOTS[k])
        basis[i, k], basis[i, k + 1] = 1 - t, t
    return basis


def fit_knots(proxy: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The inner knots' values by least squares, the ends pinned to 0 and 100."""
    basis = interpolate_basis(proxy)
    inner, *_ = np.linalg.lstsq(basis[:, 1:-1], reference - 100 * basis[:, -1], rcond=None)
    return np.concatenate(([0.0], inner, [100.0]))


def report(name: str, predicted: np.ndarray, reference: np.ndarray) -> None:
    error = predicted - reference
    rho = spearmanr(predicted, reference).statistic
    print(
        f"  {name:44s} MAE {np.abs(error).mean():5.2f}  signed {error.mean():+5.2f}  rho {rho:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).with_name("proxy_calibration.csv")
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()
    # As pixfit renders: one libvips thread (AV1's bitstream depends on the thread count).
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)
    rows = measure(args.data)
    features = np.array([[row.errors[s] for s in SCALES] for row in rows])
    reference = np.array([row.reference for row in rows])
    target = np.array([inverse_polynomial(r) for r in reference])
    photos = np.array([row.photo for row in rows])
    formats = np.array([row.format.value for row in rows])

    # Leave each photo out: weights fitted on the others, then the knots on those predictions.
    held_out = np.zeros(len(rows))
    for photo in sorted(set(photos)):
        train = photos != photo
        weights, _ = nnls(features[train], target[train])
        held_out[~train] = predict(weights, features[~train])
    corrected = np.zeros(len(rows))
    for photo in sorted(set(photos)):
        for fmt in set(formats):
            train, test = (photos != photo) & (formats == fmt), (photos == photo) & (formats == fmt)
            if test.any():
                knots = fit_knots(held_out[train], reference[train])
                corrected[test] = interpolate_basis(held_out[test]) @ knots

    weights, _ = nnls(features, target)
    current = np.array([WEIGHTS.get(s, 0.0) for s in SCALES])
    print("\nweights by scale (1 = half the display size):")
    print("  fitted  ", {s: round(float(w), 3) for s, w in zip(SCALES, weights, strict=True)})
    print("  current ", {s: round(float(w), 3) for s, w in zip(SCALES, current, strict=True)})
    print("per-format corrections (proxy -> SSIMULACRA2):")
    fitted = predict(weights, features)
    for fmt in sorted(set(formats)):
        knots = fit_knots(fitted[formats == fmt], reference[formats == fmt])
        pairs = [(k, round(float(v), 1)) for k, v in zip(KNOTS, knots, strict=True)]
        print(f"  {fmt:5s} fitted  ", pairs)
        print(f"  {fmt:5s} current ", list(CORRECTIONS.get(ImageFormat(fmt), ())))
    print("\nagainst SSIMULACRA2:")
    report("raw, each photo left out", held_out, reference)
    report("corrected, each photo left out", corrected, reference)
    within = [
        spearmanr(corrected[photos == p], reference[photos == p]).statistic for p in set(photos)
    ]
    print(f"  rank correlation within a photo: mean {statistics.fmean(within):.3f}")
    print("  per-photo offset (corrected - reference, mean):")
    for photo in sorted(set(photos)):
        print(f"    {photo:14s} {float((corrected - reference)[photos == photo].mean()):+5.1f}")


if __name__ == "__main__":
    main()
