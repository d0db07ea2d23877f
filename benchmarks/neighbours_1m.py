"""Neighbour search at scale: N x D synthetic clustered vectors through the real store and IVF_PQ index.

Prints JSON lines: build time, ANN p50 (backend.neighbours.search), full neighbours() p50 (id lookup +
metadata), filtered p50, exact numpy p50 and recall@10 of the index against exact numpy search.

    python benchmarks/neighbours_1m.py --n 1000000 --dim 256
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa
from bench_common import emit, scratch_folder

from backend import schema
from backend.index import build_index, exact_neighbours
from backend.neighbours import ensure_id_index, neighbours, search
from backend.spaces import SpaceInfo, register_space
from backend.store import open_atlas, utcnow


def clustered(n: int, dim: int, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    labels = rng.integers(0, n_clusters, n)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        sl = slice(start, start + 100_000)
        out[sl] = centres[labels[sl]] + 0.7 * rng.normal(size=(len(labels[sl]), dim)).astype(np.float32)
    return out


def write(atlas, info: SpaceInfo, vectors: np.ndarray, rng: np.random.Generator) -> list[str]:
    n = len(vectors)
    ids = [f"g{i:07d}" for i in range(n)]
    now = utcnow()
    for start in range(0, n, 100_000):
        sl = slice(start, start + 100_000)
        m = len(ids[sl])
        atlas.append(
            "objects",
            pa.table(
                {
                    "object_id": ids[sl],
                    "survey": np.where(rng.random(m) < 0.5, "sdss", "desi"),
                    "ra": rng.uniform(0, 360, m),
                    "dec": rng.uniform(-30, 60, m),
                    "redshift": rng.uniform(0.0, 0.6, m).astype(np.float32),
                }
            ),
        )
        vec = vectors[sl]
        atlas.append(
            info.table,
            pa.table(
                {
                    "object_id": pa.array(ids[sl]),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vec.reshape(-1)), info.dim),
                    "encoder": pa.array([info.encoder] * m),
                    "weights_revision": pa.array([info.weights_revision] * m),
                    "preprocess_version": pa.array([info.preprocess_version] * m),
                    "created_at": pa.array([now] * m, pa.timestamp("us", tz="UTC")),
                },
                schema=schema.vectors_schema(info.dim),
            ),
            create_schema=schema.vectors_schema(info.dim),
        )
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--atlas", default=None, help="atlas folder (default: a temporary one, deleted after)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with scratch_folder("arp-bench-", given=args.atlas) as folder:
        atlas = open_atlas(folder, create=True)
        info = SpaceInfo("bench", "image", args.dim, "synthetic", "v1")
        register_space(atlas, info)
        vectors = clustered(args.n, args.dim, max(10, args.n // 1000), rng)
        if atlas.count(info.table) == args.n:  # a kept --atlas from an earlier run: reuse rows and index
            ids = [f"g{i:07d}" for i in range(args.n)]
            plan = atlas.get_meta(f"index:{info.name}")
        else:
            t0 = time.perf_counter()
            ids = write(atlas, info, vectors, rng)
            emit("neighbours.write_rows", args.n / (time.perf_counter() - t0), "rows/s", n=args.n)
            plan = build_index(atlas, info.name)
        t0 = time.perf_counter()
        ensure_id_index(atlas, info.table)
        ensure_id_index(atlas, "objects")
        emit("neighbours.id_index_build", time.perf_counter() - t0, "s", n=args.n)
        emit("neighbours.index_build", plan["build_s"], "s", n=args.n, dim=args.dim, index=plan["type"],
             num_partitions=plan["num_partitions"], num_sub_vectors=plan["num_sub_vectors"], nprobes=plan["nprobes"],
             refine_factor=plan["refine_factor"])
        picks = np.random.default_rng(1).choice(args.n, args.queries, replace=False)  # same queries on a reused atlas
        queries = vectors[picks]
        t0 = time.perf_counter()
        truth = exact_neighbours(vectors, queries, 11)
        exact_ms = (time.perf_counter() - t0) / len(picks) * 1000
        emit("neighbours.exact_numpy_per_query", exact_ms, "ms", n=args.n, note="batched 64 queries per matmul")
        one = []
        for q in queries[:20]:
            t0 = time.perf_counter()
            exact_neighbours(vectors, q[None], 11)
            one.append(time.perf_counter() - t0)
        emit("neighbours.exact_numpy_p50", np.median(one) * 1000, "ms", n=args.n, note="one query at a time")
        search(atlas, queries[0], info.name, 10)  # warm the index cache
        for nprobes in (None, 20):
            times, recalls = [], []
            for qi, row in enumerate(picks):
                t0 = time.perf_counter()
                found = search(atlas, vectors[row], info.name, 10, exclude=(ids[row],), nprobes=nprobes)
                times.append(time.perf_counter() - t0)
                want = {ids[j] for j in truth[qi] if j != row}
                recalls.append(len(want & set(found["object_id"][:10])) / 10)
            label = "" if nprobes is None else f"_nprobes{nprobes}"
            emit(f"neighbours.ann_p50{label}", np.median(times) * 1000, "ms", n=args.n, p95_ms=round(np.percentile(times, 95) * 1000, 2))
            emit(f"neighbours.recall_at_10{label}", np.mean(recalls), "fraction", n=args.n, vs="exact numpy")
        full = []
        for row in picks[:30]:
            t0 = time.perf_counter()
            neighbours(atlas, ids[row], info.name, k=10)
            full.append(time.perf_counter() - t0)
        emit("neighbours.neighbours_call_p50", np.median(full) * 1000, "ms", n=args.n, note="id lookup + ANN + metadata join")
        cat = atlas.objects(["object_id", "survey", "redshift"]).set_index("object_id").loc[ids]
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        for label, kwargs in (("broad", {"z_range": (0.1, 0.4)}), ("narrow", {"z_range": (0.1, 0.104), "survey": "sdss"})):
            ok = cat["redshift"].between(*kwargs["z_range"]).to_numpy()
            if "survey" in kwargs:
                ok = ok & (cat["survey"] == kwargs["survey"]).to_numpy()
            rows = np.flatnonzero(ok)
            ft, recalls = [], []
            for row in picks[:15]:
                t0 = time.perf_counter()
                out = neighbours(atlas, ids[row], info.name, k=10, **kwargs)
                ft.append(time.perf_counter() - t0)
                assert out["redshift"].between(*kwargs["z_range"]).all()
                sims = unit[rows] @ unit[row]
                best = [ids[j] for j in rows[np.argsort(-sims)] if j != row][:10]
                recalls.append(len(set(best) & set(out["object_id"])) / 10)
            emit(f"neighbours.filtered_{label}_p50", np.median(ft) * 1000, "ms", n=args.n, filter=str(kwargs),
                 matches=int(ok.sum()), recall_at_10=round(float(np.mean(recalls)), 3))


if __name__ == "__main__":
    main()
