"""Filtered neighbours() on a built atlas (e.g. the 1M load-test atlas): p50 per filter and recall@10 vs exact.

Filters: a narrow and a broad redshift range, a redshift range with a survey, a tag on `--tagged` random objects
(written as tag `bench-filter`), and a SQL condition on ra. Exact answers come from all vectors of the space in
numpy. Each call asks for what the Galaxy page's grid shows (id, similarity, position, redshift, survey, thumbnail);
`--labels` adds every label column of the objects table (the notebooks' default). Prints JSON lines
(benchmarks/bench_common.py).

    python benchmarks/neighbours_filtered.py --atlas /work/scale-data/m1 [--queries 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import emit  # noqa: E402

from backend import tags  # noqa: E402
from backend.neighbours import neighbours  # noqa: E402
from backend.spaces import list_spaces, read_vectors  # noqa: E402
from backend.store import open_atlas  # noqa: E402

TAG = "bench-filter"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", required=True)
    parser.add_argument("--space", default=None, help="default: the first image space")
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--tagged", type=int, default=2_000)
    parser.add_argument("--labels", action="store_true", help="also take every label column of the result rows")
    args = parser.parse_args()
    columns = None if args.labels else ()
    atlas = open_atlas(args.atlas)
    space = args.space or next(s for s, info in list_spaces(atlas).items() if info.modality == "image")
    cat = atlas.objects(["object_id", "survey", "redshift", "ra"])
    n = len(cat)
    rng = np.random.default_rng(0)
    survey = str(cat["survey"].mode().iloc[0])
    if not tags.tagged_ids(atlas, TAG):
        tags.add_tag(atlas, list(cat["object_id"].sample(args.tagged, random_state=0)), TAG)
    tagged = set(tags.tagged_ids(atlas, TAG))
    ids, mat = read_vectors(atlas, space)
    unit = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    row_of = {oid: i for i, oid in enumerate(ids)}
    z = cat["redshift"].to_numpy(np.float64)
    filters = {
        "narrow_z": ({"z_range": (0.1, 0.1005)}, (z >= 0.1) & (z <= 0.1005)),
        "narrow_z_survey": ({"z_range": (0.1, 0.1005), "survey": survey}, (z >= 0.1) & (z <= 0.1005) & (cat["survey"] == survey).to_numpy()),
        "mid_z": ({"z_range": (0.2, 0.25)}, (z >= 0.2) & (z <= 0.25)),
        "broad_z": ({"z_range": (0.05, 0.15)}, (z >= 0.05) & (z <= 0.15)),
        "tag": ({"tag": TAG}, cat["object_id"].isin(tagged).to_numpy()),
        "sql_ra": ({"where": "ra >= 150 AND ra <= 152"}, cat["ra"].between(150, 152).to_numpy()),
    }
    queries = list(cat["object_id"].iloc[rng.choice(n, args.queries + 1, replace=False)])
    neighbours(atlas, queries[-1], space, k=10, columns=columns)  # warm: row maps, metadata, index cache
    plain = []
    for oid in queries[:-1]:
        t0 = time.perf_counter()
        neighbours(atlas, oid, space, k=10, columns=columns)
        plain.append(time.perf_counter() - t0)
    emit("neighbours.unfiltered_p50", statistics.median(plain) * 1000, "ms", objects=n, space=space, labels=args.labels)
    for label, (kwargs, ok) in filters.items():
        allowed = np.array([row_of[o] for o in cat["object_id"].to_numpy()[ok] if o in row_of], np.int64)
        neighbours(atlas, queries[-1], space, k=10, columns=columns, **kwargs)  # the first call of a SQL filter reads its mask
        times, recalls = [], []
        for oid in queries[:-1]:
            t0 = time.perf_counter()
            out = neighbours(atlas, oid, space, k=10, columns=columns, **kwargs)
            times.append(time.perf_counter() - t0)
            sims = unit[allowed] @ unit[row_of[oid]]
            best = [ids[j] for j in allowed[np.argsort(-sims, kind="stable")] if ids[j] != oid][:10]
            want = min(10, len(best))
            recalls.append(len(set(best) & set(out["object_id"])) / want if want else 1.0)
        emit(f"neighbours.filtered_{label}_p50", statistics.median(times) * 1000, "ms", objects=n, filter=str(kwargs),
             matches=int(ok.sum()), labels=args.labels, recall_at_10=round(float(np.mean(recalls)), 3),
             p95_ms=round(float(np.percentile(times, 95)) * 1000, 1), max_ms=round(max(times) * 1000, 1),
             load=round(os.getloadavg()[0], 1))


if __name__ == "__main__":
    main()
