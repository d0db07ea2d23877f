"""ANN index of one embedding space: N x D synthetic clustered vectors written with backend.spaces.write_vectors.

Prints JSON lines: write time, build time, query p50 and recall@10 for exact numpy search, the
flat (unindexed) LanceDB scan and the index `backend.index.build_index` picks (IVF_PQ with refine;
`--types IVF_PQ,IVF_HNSW_SQ` to compare).

    python benchmarks/ann_index.py                  # 200k x 256
    python benchmarks/ann_index.py --n 1000000      # 1M x 256
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from bench_common import emit, scratch_folder

from backend.index import build_index, measure_recall
from backend.spaces import SpaceInfo, register_space, write_vectors
from backend.store import open_atlas


def clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian clusters (about 100 members each) around random centres."""
    centres = rng.normal(size=(max(2, n // 100), dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--types", default="IVF_PQ")
    parser.add_argument("--dir", default=None, help="where to put the temporary atlas (default: system temp)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    tags = {"n": args.n, "dim": args.dim}
    with scratch_folder("arp-ann-", parent=args.dir) as root:
        atlas = open_atlas(os.path.join(root, "atlas"), create=True)
        info = SpaceInfo("bench", "image", args.dim, "synthetic", "v1")
        register_space(atlas, info)
        vectors = clustered(args.n, args.dim, rng)
        t0 = time.perf_counter()
        step = 50_000
        for start in range(0, args.n, step):
            ids = [f"g{i:07d}" for i in range(start, min(args.n, start + step))]
            write_vectors(atlas, info, ids, vectors[start : start + step])
        atlas.optimize(info.table)
        emit("ann_write_vectors", time.perf_counter() - t0, "s", **tags)

        picks = rng.choice(args.n, args.queries, replace=False)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        times = []
        for row in picks:
            t = time.perf_counter()
            top = np.argpartition(-(unit @ unit[row]), 10)[:11]
            times.append(time.perf_counter() - t)
        assert row in top
        emit("ann_exact_numpy_p50", np.median(times) * 1000, "ms", recall_at_10=1.0, **tags)

        build_index(atlas, info.name, flat_threshold=args.n + 1)
        flat = measure_recall(atlas, info.name, n_queries=min(args.queries, 20))
        emit("ann_flat_lance_p50", flat["query_p50_ms"], "ms", recall_at_10=round(flat["recall_at_k"], 4), **tags)

        for index_type in args.types.split(","):
            built = build_index(atlas, info.name, flat_threshold=0, index_type=index_type)
            result = measure_recall(atlas, info.name, n_queries=args.queries)
            params = {k: built.get(k) for k in ("num_partitions", "num_sub_vectors", "nprobes", "refine_factor", "ef")}
            emit(f"ann_{index_type.lower()}_build", built["build_s"], "s", **tags, **params)
            emit(f"ann_{index_type.lower()}_p50", result["query_p50_ms"], "ms",
                 recall_at_10=round(result["recall_at_k"], 4), **tags, **params)


if __name__ == "__main__":
    main()
