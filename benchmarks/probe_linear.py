"""Probe figures: linear (ridge) probe on N x D frozen vectors through the real store, end to end.

    python benchmarks/probe_linear.py --n 100000 --dim 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from bench_common import emit, scratch_folder

from backend import probes
from backend.spaces import SpaceInfo, register_space, write_vectors
from backend.store import open_atlas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--methods", default="linear")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with scratch_folder("arp-probe-") as folder:
        atlas = open_atlas(folder, create=True)
        z = rng.uniform(0.0, 0.6, args.n)
        mix = rng.normal(size=(8, args.dim))
        latent = np.column_stack([z, z**2, rng.normal(size=(args.n, 6))])
        vectors = (latent @ mix + 0.3 * rng.normal(size=(args.n, args.dim))).astype(np.float32)
        ids = [f"p{i:07d}" for i in range(args.n)]
        atlas.upsert("objects", pd.DataFrame({"object_id": ids, "redshift": z.astype(np.float32),
                                               "split": np.where(rng.random(args.n) < 0.8, "train", "test"),
                                               "kind": np.where(z > 0.3, "far", "near")}), batch_rows=50_000)
        info = SpaceInfo("bench", "image", args.dim, "synthetic", "v1")
        register_space(atlas, info)
        write_vectors(atlas, info, ids, vectors)
        for method in args.methods.split(","):
            for target in ("redshift", "kind"):
                t0 = time.perf_counter()
                out = probes.train_probe(atlas, info.name, target, method)
                metric = out["metrics"].get("r2", out["metrics"].get("accuracy"))
                emit(f"probe.{method}_{target}", time.perf_counter() - t0, "s", n=args.n, dim=args.dim,
                     metric=round(metric, 4), note="read vectors + fit + evaluate + save probe + write predictions")


if __name__ == "__main__":
    main()
