#!/usr/bin/env python3
"""Generate the numpy cross-check data for src/compare/metrics.rs.

Writes, next to this script:
  reference.f32.bin   float32 little-endian, shape (4, 20, 30)
  candidate.f32.bin   float32 candidate (reference plus relative and absolute noise)
  candidate.f16.bin   float16 candidate (the reference rounded to half precision)
  expected.json       metrics computed with numpy in float64 for both candidates

Definitions match the Rust kernel: relative error = |c - r| / |r| with exact zeros in r replaced by
float64 eps (2.220446049250313e-16); allclose = numpy isclose(c, r, rtol, atol); polygraphy rule =
(|c - r| > atol) & (rel > rtol). Re-run with `python3 make_expected.py` (numpy only); the output
is deterministic for a given numpy version.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = (4, 20, 30)
ATOL = 1e-4
RTOL = 1e-3
EPS = np.finfo(np.float64).eps


def metrics(r32, c):
    """Error statistics over finite pairs; mismatches over all elements (no NaN here, so every
    non-finite pair is an infinity against a finite value: always a mismatch)."""
    r_all = r32.astype(np.float64).ravel()
    c_all = c.astype(np.float64).ravel()
    finite = np.isfinite(r_all) & np.isfinite(c_all)
    nonfinite = int((~finite).sum())
    r, c = r_all[finite], c_all[finite]
    d = np.abs(c - r)
    rel = d / np.where(r == 0, EPS, np.abs(r))
    nr, nc = np.linalg.norm(r), np.linalg.norm(c)
    # worst: a non-finite mismatch ranks above every finite error, ties to the lowest index
    worst = int(np.argmax(~finite)) if nonfinite else int(np.argmax(np.abs(c_all - r_all)))
    c_fin = c_all[np.isfinite(c_all)]
    return {
        "max_abs": float(d.max()),
        "mean_abs": float(d.mean()),
        "median_abs": float(np.median(d)),
        "p99_abs": float(np.percentile(d, 99)),
        "max_rel": float(rel.max()),
        "mean_rel": float(rel.mean()),
        "allclose_mismatches": int((~np.isclose(c, r, rtol=RTOL, atol=ATOL)).sum()) + nonfinite,
        "polygraphy_mismatches": int(((d > ATOL) & (rel > RTOL)).sum()) + nonfinite,
        "inf_candidate": int(np.isinf(c_all).sum()),
        "cosine": float(np.dot(r, c) / (nr * nc)),
        "rel_l2": float(np.linalg.norm(c - r) / nr),
        "snr_db": float(10 * np.log10(np.sum(r * r) / np.sum((c - r) ** 2))),
        "deviation_ratio_10pct": float(np.mean(rel > 0.1)),
        "candidate_min": float(c_fin.min()),
        "candidate_max": float(c_fin.max()),
        "worst_flat": worst,
        "worst_index": [int(i) for i in np.unravel_index(worst, SHAPE)],
    }


def main():
    rng = np.random.default_rng(20240611)
    n = int(np.prod(SHAPE))
    r = rng.standard_normal(n) * 10.0 ** rng.uniform(-9, 2.5, n)
    r[rng.random(n) < 0.05] = 0.0
    r[:3] = [70000.0, -1e5, 3e-9]  # fp16 overflow and underflow
    r = r.astype(np.float32)
    r64 = r.astype(np.float64)
    c = r64 * (1 + rng.normal(0, 1e-3, n)) + rng.normal(0, 1e-5, n)
    c[rng.random(n) < 0.02] *= 1.5  # a few clearly deviating elements
    c = c.astype(np.float32)
    with np.errstate(over="ignore"):
        h = r.astype(np.float16)  # the two values beyond 65504 become infinities

    a = np.abs(r64)
    expected = {
        "shape": list(SHAPE),
        "atol": ATOL,
        "rtol": RTOL,
        "reference": {
            "min": float(r64.min()),
            "max": float(r64.max()),
            "abs_max": float(a.max()),
            "fp16_overflow": int((a > 65504).sum()),
            "fp16_subnormal": int(((a != 0) & (a < 2.0**-14)).sum()),
            "fp16_underflow": int(((a != 0) & (a < 2.0**-24)).sum()),
        },
        "cases": {"f32": metrics(r, c), "f16": metrics(r, h)},
    }
    r.astype("<f4").tofile(os.path.join(HERE, "reference.f32.bin"))
    c.astype("<f4").tofile(os.path.join(HERE, "candidate.f32.bin"))
    h.astype("<f2").tofile(os.path.join(HERE, "candidate.f16.bin"))
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
