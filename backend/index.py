"""ANN indexes of embedding spaces: flat below a size threshold, IVF_PQ with refine above it.

`build_index(atlas, space)` builds (or drops) the index of `vectors__<space>` and records how to
query it in atlas meta; `measure_recall` compares the index with exact numpy search and records
recall@k. Readers (backend/neighbours.py) query through `search_params` / the meta entry:

    meta key f"index:{space}" -> {
        "type": "flat" | "IVF_PQ" | "IVF_HNSW_SQ",  # flat: no index, LanceDB scans exactly
        "metric": "cosine",             # distance_type to pass to queries
        "nprobes": int | None,          # partitions to probe (IVF only)
        "refine_factor": int | None,    # re-rank k * refine_factor candidates exactly (IVF_PQ)
        "ef": int,                      # HNSW search breadth (IVF_HNSW_SQ only)
        "num_partitions": int | None, "num_sub_vectors": int | None,
        "rows": int,                    # table rows when the index was built
        "build_s": float,               # build time, seconds
        "recall_at_10": float | None,   # measured against exact search (None until measured)
        "query_p50_ms": float | None,   # median latency of those queries
        "built_at": ISO timestamp,
    }

With cosine distance the IVF_PQ parameters scale with the table: num_partitions ~ sqrt(n),
num_sub_vectors = dim / 4 (4 dimensions per 8-bit code), nprobes ~ num_partitions / 25 (at least 20),
refine_factor 20 (an unrefined PQ index has poor recall at k=10).
"""

from __future__ import annotations

import math
import time

import numpy as np

from backend.spaces import read_vectors, space_table
from backend.store import Atlas, utcnow, with_retry

FLAT_THRESHOLD = 20_000
METRIC = "cosine"
REFINE_FACTOR = 20
MIN_NPROBES = 20
HNSW_EF = 100


def meta_key(space: str) -> str:
    """Atlas meta key of a space's index description."""
    return f"index:{space}"


def index_is_current(atlas: Atlas, space: str) -> bool:
    """Whether the space's index was built over exactly the rows its table holds now (not missing, not stale)."""
    built = atlas.get_meta(meta_key(space))
    return bool(built) and built.get("rows") == atlas.count(space_table(space))


def _divisor_near(dim: int, target: int) -> int:
    """The divisor of `dim` closest to `target` (PQ sub-vectors must split the dimension evenly)."""
    divisors = [d for d in range(1, dim + 1) if dim % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d))


def index_plan(rows: int, dim: int, *, flat_threshold: int = FLAT_THRESHOLD, index_type: str = "IVF_PQ") -> dict:
    """Index type and parameters scaled to a table of `rows` x `dim`."""
    if rows < flat_threshold:
        return {"type": "flat", "metric": METRIC, "nprobes": None, "refine_factor": None,
                "num_partitions": None, "num_sub_vectors": None}
    partitions = max(1, int(round(math.sqrt(rows))))
    if index_type == "IVF_HNSW_SQ":
        partitions = max(1, rows // 100_000)  # HNSW graphs per partition: few, large partitions
        return {"type": "IVF_HNSW_SQ", "metric": METRIC, "num_partitions": partitions, "num_sub_vectors": None,
                "nprobes": partitions, "refine_factor": None, "ef": HNSW_EF}
    if index_type != "IVF_PQ":
        raise ValueError(f"index_type must be IVF_PQ or IVF_HNSW_SQ, got {index_type!r}")
    return {
        "type": "IVF_PQ",
        "metric": METRIC,
        "num_partitions": partitions,
        "num_sub_vectors": _divisor_near(dim, max(1, dim // 4)),
        "nprobes": min(partitions, max(MIN_NPROBES, partitions // 25)),
        "refine_factor": REFINE_FACTOR,
    }


def build_index(atlas: Atlas, space: str, *, flat_threshold: int = FLAT_THRESHOLD, index_type: str = "IVF_PQ") -> dict:
    """Build or refresh the ANN index of a space (flat below `flat_threshold` rows) and record it in meta."""
    tbl = atlas.table(space_table(space))
    rows = tbl.count_rows()
    dim = tbl.schema.field("vector").type.list_size
    plan = index_plan(rows, dim, flat_threshold=flat_threshold, index_type=index_type)
    start = time.perf_counter()
    if plan["type"] == "flat":
        for idx in tbl.list_indices():
            if idx.columns == ["vector"]:
                with_retry(lambda name=idx.name: tbl.drop_index(name), tbl.name)  # type: ignore[misc]
    else:
        with_retry(
            lambda: tbl.create_index(
                metric=plan["metric"],
                vector_column_name="vector",
                index_type=plan["type"],
                num_partitions=plan["num_partitions"],
                num_sub_vectors=plan["num_sub_vectors"],
                replace=True,
            ),
            tbl.name,
        )
    info = {**plan, "rows": rows, "build_s": round(time.perf_counter() - start, 3), "recall_at_10": None,
            "query_p50_ms": None, "built_at": utcnow().isoformat()}
    atlas.set_meta(meta_key(space), info)
    return info


def search_params(atlas: Atlas, space: str) -> dict:
    """How to query a space: its meta entry, or exact flat search when no index was built."""
    return atlas.get_meta(meta_key(space)) or index_plan(0, 1)


def ann_search(atlas: Atlas, space: str, vector: np.ndarray, k: int = 10) -> list[str]:
    """Object ids of the k nearest stored vectors through the index as recorded in meta."""
    tbl = atlas.table(space_table(space))
    params = search_params(atlas, space)
    query = tbl.search(np.asarray(vector, np.float32), vector_column_name="vector").distance_type(params["metric"])
    if params["type"] == "IVF_PQ":
        query = query.nprobes(params["nprobes"]).refine_factor(params["refine_factor"])
    elif params["type"] == "IVF_HNSW_SQ":
        query = query.nprobes(params["nprobes"]).ef(max(params.get("ef") or HNSW_EF, k))
    return [r["object_id"] for r in query.select(["object_id", "_distance"]).limit(k).to_list()]


def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the k nearest `vectors` by cosine distance for each query (brute force numpy)."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    out = np.empty((len(q), k), np.int64)
    for start in range(0, len(q), 64):
        sims = q[start : start + 64] @ v.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 64] = np.take_along_axis(part, order, axis=1)
    return out


def measure_recall(atlas: Atlas, space: str, n_queries: int = 100, k: int = 10, seed: int = 0) -> dict:
    """Recall@k of the recorded index against exact search, queries drawn from the stored vectors.

    Each query's own row is excluded from both result lists; the figures are written into the meta entry.
    """
    ids, vectors = read_vectors(atlas, space)
    if len(ids) < 2:
        return {"recall_at_k": None, "k": k, "n_queries": 0, "query_p50_ms": None}
    k = min(k, len(ids) - 1)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(ids), size=min(n_queries, len(ids)), replace=False)
    truth = exact_neighbours(vectors, vectors[picks], k + 1)
    hits, times = [], []
    for qi, row in enumerate(picks):
        t0 = time.perf_counter()
        found = ann_search(atlas, space, vectors[row], k + 1)
        times.append(time.perf_counter() - t0)
        want = {ids[j] for j in [j for j in truth[qi] if j != row][:k]}
        got = [o for o in found if o != ids[row]][:k]
        hits.append(len(want.intersection(got)) / k)
    result = {"recall_at_k": float(np.mean(hits)), "k": k, "n_queries": len(picks),
              "query_p50_ms": float(np.median(times) * 1000)}
    info = atlas.get_meta(meta_key(space)) or {**index_plan(0, 1), "rows": len(ids)}
    if k == 10:
        info["recall_at_10"] = round(result["recall_at_k"], 4)
    info["query_p50_ms"] = round(result["query_p50_ms"], 3)
    atlas.set_meta(meta_key(space), info)
    return result
