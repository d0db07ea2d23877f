"""Rare-object discovery measured on the demo survey's held-out truth (never seen by the methods).

Prints JSON lines: precision@100 of planted rare classes among the top-100 anomalies (per scorer),
how many rare classes dominate (>= 50% purity) a surfaced cluster, and the uplift of precision@100
after 20 simulated user tags (the simulated user looks at the top of the current list and tags what
the truth says, in rounds of 5, as a person reviewing the list would). Works in memory: the atlas is
not modified.

    python benchmarks/rare_eval.py --atlas data/atlases/sdss10k --space arp-pair-image__image
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("LANCEDB_LOG", "error")

from bench_common import emit  # noqa: E402

from backend import active, anomaly, rare  # noqa: E402
from backend.config import default_atlas_uri  # noqa: E402
from backend.store import open_atlas  # noqa: E402

TOP = 100




def precision_at(order: np.ndarray, truth: np.ndarray, n: int = TOP) -> float:
    return float(truth[order[:n]].mean())


def simulate_user(X: np.ndarray, base: np.ndarray, truth: np.ndarray, n_tags: int, per_round: int, regressor: str) -> tuple[np.ndarray, np.ndarray]:
    """Tag the top unlabelled objects of the current list per the truth, re-rank after each round."""
    labelled: list[int] = []
    score = base.copy()
    while len(labelled) < n_tags:
        order = np.argsort(-score, kind="stable")
        seen = set(labelled)
        batch = [int(i) for i in order if int(i) not in seen][: min(per_round, n_tags - len(labelled))]
        labelled += batch
        idx = np.array(labelled)
        score, _, _ = active.blend(X, base, idx, truth[idx].astype(float), regressor=regressor)
    return score, np.array(labelled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--atlas", default=default_atlas_uri())
    parser.add_argument("--space", default="arp-pair-image__image")
    parser.add_argument("--components", type=int, default=anomaly.DEFAULT_COMPONENTS)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tags", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--min-cluster-size", type=int, default=5)
    args = parser.parse_args()
    atlas = open_atlas(args.atlas)
    ids, X = anomaly.features(atlas, args.space, args.components)
    # Truth is read only here, for evaluation; the methods above and below see only vectors (and simulated tags).
    objs = atlas.objects(["object_id", "is_rare", "rare_class"]).set_index("object_id").loc[ids]
    truth = objs["is_rare"].to_numpy(bool)
    classes = objs["rare_class"].to_numpy(str)
    common = dict(space=args.space, n=len(ids), base_rate=round(float(truth.mean()), 4))

    t0 = time.perf_counter()
    scores = anomaly.score(X, k=args.k)
    emit("rare.anomaly_scoring_time", time.perf_counter() - t0, "s", **common)
    for column in scores.columns:
        order = np.argsort(-scores[column].to_numpy(), kind="stable")
        found = sorted(set(classes[order[:TOP]]) - {""})
        emit(f"rare.precision_at_100.{column}", precision_at(order, truth), "fraction", classes_found=found, **common)
    best = max(scores.columns, key=lambda c: precision_at(np.argsort(-scores[c].to_numpy(), kind="stable"), truth))

    for on in ("pca", "map"):
        if on == "map":
            frame = atlas.table(f"maps__{args.space}").to_pandas() if atlas.has_table(f"maps__{args.space}") else None
            if frame is None:
                continue
            Z = frame.set_index("object_id").loc[ids, ["x", "y"]].to_numpy(np.float64)
        else:
            Z = X
        labels = rare.cluster_labels(Z, min_cluster_size=args.min_cluster_size)
        table = rare.rank_clusters(X, labels, ids)
        dominated, details = set(), []
        for row in table.itertuples():
            members = classes[labels == row.cluster]
            values, counts = np.unique(members, return_counts=True)
            top_class, purity = values[counts.argmax()], counts.max() / len(members)
            if top_class and purity >= 0.5:
                dominated.add(str(top_class))
                details.append({"rank": int(row.rank), "class": str(top_class), "purity": round(float(purity), 2), "size": int(row.size)})
        emit(f"rare.classes_dominating_a_cluster.{on}", len(dominated), "classes", n_clusters=len(table),
             n_rare_classes=len(set(classes) - {""}), clusters=details, **common)

    base = scores["anomaly"].to_numpy()
    for name, base_scores in (("anomaly", base), (best, scores[best].to_numpy())):
        ranked_base = anomaly.percentile_rank(base_scores)
        before = precision_at(np.argsort(-ranked_base, kind="stable"), truth)
        for regressor in ("knn", "forest"):
            after_scores, labelled = simulate_user(X, ranked_base, truth, args.tags, args.per_round, regressor)
            order = np.argsort(-after_scores, kind="stable")
            after = precision_at(order, truth)
            unseen = np.array([i for i in order if i not in set(labelled)])
            emit(f"rare.precision_at_100_after_{args.tags}_tags.{name}.{regressor}", after, "fraction",
                 before=round(before, 4), uplift=round(after / before, 2) if before else None,
                 unseen_precision_at_100=round(precision_at(unseen, truth), 4),
                 tagged_rare=int(truth[labelled].sum()), **common)


if __name__ == "__main__":
    main()
