"""Map figures: datashader render of N points (density, categorical, continuous) and a UMAP fit of M points.

    python benchmarks/maps_render.py --render-n 1000000 --umap-n 100000
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from bench_common import emit  # noqa: E402

from backend import maps, render


def blobs(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(40, dim)) * 2.0
    return (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, dim))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--render-n", type=int, default=1_000_000)
    parser.add_argument("--umap-n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.render_n
    xy = blobs(n, 2, rng) * 3
    frame = pd.DataFrame({"object_id": np.arange(n).astype(str), "x": xy[:, 0], "y": xy[:, 1],
                          "morphology": rng.choice(["spiral", "elliptical", "s0", "merger", "ring"], n),
                          "redshift": rng.uniform(0, 0.5, n)})
    t0 = time.perf_counter()
    render.render(frame.head(1000), width=900, height=600)
    emit("maps.render_first_call", time.perf_counter() - t0, "s", note="includes numba compilation")
    for color in (None, "morphology", "redshift"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            out = render.render(frame, color, width=900, height=600)
            times.append(time.perf_counter() - t0)
        assert out.image.shape == (600, 900, 4)
        emit(f"maps.render_{color or 'density'}", np.median(times), "s", n=n, size="900x600")
    t0 = time.perf_counter()
    ids = render.points_in_polygon(frame, [(-5, -5), (5, -5), (5, 5), (-5, 5), (-8, 0)])
    emit("maps.lasso_select", time.perf_counter() - t0, "s", n=n, selected=len(ids))
    if args.umap_n:
        vectors = blobs(args.umap_n, args.dim, rng)
        t0 = time.perf_counter()
        reduced = maps.reduce(vectors, 50)
        t_pca = time.perf_counter() - t0
        t0 = time.perf_counter()
        xy = maps.fit_map(reduced, maps.MapParams())
        emit("maps.umap_fit", time.perf_counter() - t0, "s", n=args.umap_n, dim=args.dim, pca_s=round(t_pca, 2),
             threads=os.environ.get("NUMBA_NUM_THREADS", "default"), finite=bool(np.isfinite(xy).all()))


if __name__ == "__main__":
    main()
