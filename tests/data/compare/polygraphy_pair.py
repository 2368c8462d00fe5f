"""Write two Polygraphy RunResults files (a.json, b.json) with Polygraphy's own API, and the metrics
numpy computes for them (expected.json). Used by tests/compare.rs; needs numpy and polygraphy.

Rules reproduced with numpy (atol=1e-3, rtol=1e-2):
  allclose:   |c - r| > atol + rtol * |r|
  polygraphy: |c - r| > atol  and  |c - r| / |r| > rtol, exact zeros of r replaced by 2.22e-16
"""
import json
import sys

import numpy as np
from polygraphy.comparator import RunResults
from polygraphy.comparator.struct import IterationResult
from polygraphy.json import save_json

out = sys.argv[1]
rng = np.random.default_rng(7)
ATOL, RTOL, GUARD = 1e-3, 1e-2, np.finfo(np.float64).eps

ref = {
    "conv_out": rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
    "probs": rng.random((4, 16)).astype(np.float16),
    "with_zeros": np.where(rng.random(64) < 0.3, 0, rng.standard_normal(64)).astype(np.float32),
}
cand = {
    "conv_out": (ref["conv_out"] + rng.normal(0, 2e-3, ref["conv_out"].shape)).astype(np.float32),
    "probs": (ref["probs"].astype(np.float32) * (1 + rng.normal(0, 5e-3, ref["probs"].shape))).astype(np.float16),
    "with_zeros": (ref["with_zeros"] + rng.normal(0, 1e-3, 64)).astype(np.float32),
}

for name, data in (("a", ref), ("b", cand)):
    rr = RunResults()
    rr.append((f"runner-{name}", [IterationResult(outputs=dict(data), runtime=0.0, runner_name=f"runner-{name}")]))
    save_json(rr, f"{out}/{name}.json")

expected = {}
for k in ref:
    r = ref[k].astype(np.float64).ravel()
    c = cand[k].astype(np.float64).ravel()
    d = np.abs(c - r)
    rel = d / np.where(r == 0, GUARD, np.abs(r))
    expected[k] = {
        "max_abs": float(d.max()),
        "mean_abs": float(d.mean()),
        "max_rel": float(rel.max()),
        "mean_rel": float(rel.mean()),
        "cosine": float(np.dot(r, c) / (np.linalg.norm(r) * np.linalg.norm(c))),
        "mismatches_allclose": int((d > ATOL + RTOL * np.abs(r)).sum()),
        "mismatches_polygraphy": int(((d > ATOL) & (rel > RTOL)).sum()),
        "total": int(r.size),
    }
with open(f"{out}/expected.json", "w") as f:
    json.dump(expected, f, indent=1)
