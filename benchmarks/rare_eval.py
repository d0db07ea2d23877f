"""Discovery figures of issue 12, measured on the demo survey's truth (never seen by the methods).

Prints JSON lines (one per figure, with the target): precision@100 of the combined anomaly ranking,
top-500 coverage of each planted class in the best feature set, rare classes surfaced by a cluster
(>= 50% pure, holding >= 30% of the class), a simulated user (tags each shown object truthfully, 10
per round, re-rank after each round) after 200 inspected vs the unsupervised top 200 and vs a forest
fitted on every other object's truth (5-fold: what near-complete labels reach in these features), "more like
these" precision@50 seeded with 5 members of a class, image->image top-12 neighbours sharing the
query's rare class, a linear morphology probe on each image space (train split -> test split),
kNN redshift R^2 of each spectrum space and cross-modal median rank (aligned pairs). The combined
ranking, the simulated user and "more like these" use the ranking sets (backend.features.ranking_set_names; the first
two as features.joint_sets keeps them, "more like these" every one, as the app does). Works in memory: the atlas is
not modified. Run it on an atlas the models were not trained on (a demo built with another seed).

    python benchmarks/rare_eval.py --atlas data/atlases/sdss10k-seed1
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_common import emit

from backend import active, anomaly, rare, similar
from backend.config import default_atlas_uri
from backend.features import anomaly_features, feature_sets, ranking_set_names
from backend.features import joint as joint_of
from backend.spaces import list_spaces, read_vectors
from backend.store import open_atlas

TOP = 100
COVER_TOP = 500
NEIGHBOUR_CLASSES = ("ring", "merger", "lens", "artefact")


def simulate_user(X: np.ndarray, base: np.ndarray, truth: np.ndarray, inspected: int, per_round: int, method: str) -> np.ndarray:
    """Inspect the top unlabelled objects of the current list, tag them per the truth, re-rank; returns the inspected rows."""
    labelled: list[int] = []
    score = base.copy()
    while len(labelled) < inspected:
        seen = set(labelled)
        batch = [int(i) for i in np.argsort(-score, kind="stable") if int(i) not in seen][:per_round]
        labelled += batch
        idx = np.array(labelled)
        score, _ = active.blend(X, base, idx, truth[idx].astype(float), method=method)
    return np.array(labelled[:inspected])


def supervised_ceiling(X: np.ndarray, truth: np.ndarray, top: int) -> int:
    """Rare objects in the top `top` of a class-balanced forest's 5-fold out-of-fold P(rare): what near-complete labels reach."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_predict

    forest = RandomForestClassifier(n_estimators=200, class_weight="balanced", min_samples_leaf=2, random_state=0, n_jobs=1)
    proba = cross_val_predict(forest, X, truth, cv=5, method="predict_proba")[:, 1]
    return int(truth[np.argsort(-proba, kind="stable")[:top]].sum())


def class_figures(order: np.ndarray, classes: np.ndarray, top: int) -> dict[str, float]:
    """Fraction of each planted class inside the first `top` of an ordering."""
    head = classes[order[:top]]
    return {c: float((head == c).sum() / (classes == c).sum()) for c in sorted(set(classes) - {""})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--atlas", default=default_atlas_uri())
    parser.add_argument("--inspect", type=int, default=200)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--method", default=active.DEFAULT_METHOD, choices=active.METHODS)
    parser.add_argument("--trials", type=int, default=3, help="random seed sets per class for 'more like these'")
    args = parser.parse_args()
    atlas = open_atlas(args.atlas)
    t0 = time.perf_counter()
    sets = feature_sets(atlas)
    scores = {name: anomaly.score_set(anomaly_features(atlas, fs)) for name, fs in sets.items()}  # as discovery does
    ranked = ranking_set_names(atlas, list(sets))
    joint, joint_scores = anomaly.score_joint({name: sets[name] for name in ranked})
    ranking = anomaly.combine({name: scores[name] for name in ranked}, joint_scores)
    emit("discover.scoring_time", time.perf_counter() - t0, "s", sets=list(sets))
    # Truth is read only here, for evaluation; the methods above and below see only features (and simulated tags).
    objs = atlas.objects(["object_id", "is_rare", "rare_class", "morphology", "split", "redshift"]).set_index("object_id")
    truth = objs.loc[joint.ids, "is_rare"].to_numpy(bool)
    classes = objs.loc[joint.ids, "rare_class"].fillna("").to_numpy(str)
    common = {"atlas": str(args.atlas), "n": len(joint.ids), "base_rate": round(float(truth.mean()), 4)}

    pos = {oid: i for i, oid in enumerate(joint.ids)}
    combined_order = np.array([pos[o] for o in ranking["object_id"]])
    emit("discover.precision_at_100.combined", truth[combined_order[:TOP]].mean(), "fraction", target=">= 0.6",
         classes_in_top=class_figures(combined_order, classes, TOP), **common)
    best_cover: dict[str, tuple[float, str]] = {}
    for name, frame in scores.items():
        order = np.array([pos[o] for o in frame["object_id"].to_numpy()[np.argsort(-frame["anomaly"].to_numpy(), kind="stable")]])
        emit(f"discover.precision_at_100.{name}", truth[order[:TOP]].mean(), "fraction", **common)
        for c, v in class_figures(order, classes, COVER_TOP).items():
            if v > best_cover.get(c, (-1.0, ""))[0]:
                best_cover[c] = (v, name)
    covered = sum(v >= 0.5 for v, _ in best_cover.values())
    emit("discover.classes_half_in_a_top_500", covered, "classes", target=f"{len(best_cover)} of {len(best_cover)}",
         per_class={c: [round(v, 2), s] for c, (v, s) in best_cover.items()}, **common)

    surfaced: dict[str, dict] = {}
    clustered = {}
    for name, fs in [(rare.COMBINED, joint), *sets.items()]:
        anomalous = joint_scores if name == rare.COMBINED else scores[name]
        labels, table = clustered[name] = rare.anomaly_clusters(fs.X, anomalous["anomaly"].to_numpy(), fs.ids)
        cls = objs.loc[fs.ids, "rare_class"].fillna("").to_numpy(str)
        for row in table.itertuples():
            members = cls[labels == row.cluster]
            values, counts = np.unique(members, return_counts=True)
            top_class, purity = str(values[counts.argmax()]), counts.max() / len(members)
            share = counts.max() / max((cls == top_class).sum(), 1)
            if top_class and purity >= 0.5 and share >= 0.3 and top_class not in surfaced:
                surfaced[top_class] = {"set": name, "rank": int(row.rank), "purity": round(float(purity), 2), "share": round(float(share), 2)}
    emit("discover.classes_surfaced_by_a_cluster", len(surfaced), "classes", target=">= 4 of 7", clusters=surfaced, **common)
    labels, table = clustered[rare.COMBINED]  # the Rare page's clusters (joint rows: the order `truth` follows)
    first = [truth[labels == c].mean() for c in table["cluster"].head(5)]
    emit("discover.rare_page_top5_clusters_planted_fraction", float(np.mean(first)) if first else 0.0, "fraction",
         per_cluster=[round(float(f), 2) for f in first], **common)

    base = anomaly.percentile_rank(ranking.set_index("object_id")["anomaly"].reindex(joint.ids).to_numpy())
    t0 = time.perf_counter()
    learner = active.with_set_scores(joint, ranking).X  # what the Rare page's re-rank reads
    inspected = simulate_user(learner, base, truth, args.inspect, args.per_round, args.method)
    found, unsupervised = int(truth[inspected].sum()), int(truth[combined_order[: args.inspect]].sum())
    emit(f"discover.simulated_user_found_after_{args.inspect}", found, "objects", target=">= 120 and >= 1.5x unsupervised",
         unsupervised_top=unsupervised, ratio=round(found / max(unsupervised, 1), 2), method=args.method,
         seconds=round(time.perf_counter() - t0, 1), **common)
    emit(f"discover.supervised_ceiling_top_{args.inspect}", supervised_ceiling(learner, truth, args.inspect), "objects",
         note="rare objects in the top of a forest fitted on every other object's truth (5-fold): what near-complete labels reach",
         **common)

    mlt = active.with_set_scores(joint_of({name: sets[name] for name in ranked}), ranking)  # every set, as the app
    mlt_classes = objs.loc[mlt.ids, "rare_class"].fillna("").to_numpy(str)
    rng = np.random.default_rng(0)
    per_class = {}
    for c in sorted(set(mlt_classes) - {""}):
        members = np.flatnonzero(mlt_classes == c)
        precisions = []
        for _ in range(args.trials):
            seeds = rng.choice(members, size=min(5, len(members)), replace=False)
            s = similar.pu_scores(mlt.X, seeds)
            s[seeds] = -np.inf
            precisions.append(float((mlt_classes[np.argsort(-s)[:50]] == c).mean()))
        per_class[c] = round(float(np.mean(precisions)), 3)
    # with the 5 seeds left out, a class of n members allows at most (n - 5) / 50 (0.5 for the demo's 30)
    ceiling = float(np.mean([min(50, (mlt_classes == c).sum() - 5) / 50 for c in per_class]))
    emit("discover.more_like_these_precision_at_50", np.mean(list(per_class.values())), "fraction", target=">= 0.6",
         per_class=per_class, seeds=5, trials=args.trials, attainable=round(ceiling, 3), **common)

    for space in list_spaces(atlas):
        if not space.endswith("__image"):
            continue
        ids, vecs = read_vectors(atlas, space)
        v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        cls = objs.loc[ids, "rare_class"].fillna("").to_numpy(str)
        shares = {}
        for c in NEIGHBOUR_CLASSES:
            q = np.flatnonzero(cls == c)
            if len(q) == 0:
                continue
            sims = v[q] @ v.T
            sims[np.arange(len(q)), q] = -np.inf
            nn = np.argsort(-sims, axis=1)[:, :12]
            shares[c] = round(float((cls[nn] == c).mean()), 3)
        emit(f"discover.image_neighbours_share_class.{space}", min(shares.values()), "fraction (worst class)",
             target=">= 0.4 each", per_class=shares, **common)
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score
        from sklearn.preprocessing import StandardScaler

        split = objs.loc[ids, "split"].to_numpy(str)
        morph = objs.loc[ids, "morphology"].to_numpy(str)
        tr, te = split == "train", split == "test"
        scaler = StandardScaler().fit(vecs[tr])
        probe = LogisticRegression(max_iter=2000, C=1.0).fit(scaler.transform(vecs[tr]), morph[tr])
        pred = probe.predict(scaler.transform(vecs[te]))
        emit(f"discover.morphology_probe.{space}", accuracy_score(morph[te], pred), "accuracy", target=">= 0.85",
             macro_f1=round(float(f1_score(morph[te], pred, average="macro")), 3), f1_target=">= 0.7",
             n_train=int(tr.sum()), n_test=int(te.sum()), **common)

    from embeddings.builtin.evaluate import evaluate_atlas, space_redshift_r2

    for space in list_spaces(atlas):
        if space.endswith("__spectrum"):
            emit(f"discover.spectrum_knn_redshift_r2.{space}", space_redshift_r2(atlas, space), "R^2",
                 target=">= 0.98", **common)
    pairs = [(s, s.replace("-image__image", "-spectrum__spectrum")) for s in list_spaces(atlas) if s.endswith("-image__image")]
    for image_space, spectrum_space in pairs:
        if spectrum_space not in list_spaces(atlas):
            continue
        m = evaluate_atlas(atlas, image_space, spectrum_space)
        emit(f"discover.cross_modal_median_rank.{image_space}", m["cross_modal_median_rank"], "rank among 1000",
             target="<= 5", ranking="cosine", **common)
        if "cross_modal_median_rank_csls" in m:  # what the app's cross-modal search ranks by (backend.hubness)
            emit(f"discover.cross_modal_median_rank_csls.{image_space}", m["cross_modal_median_rank_csls"],
                 "rank among 1000", target="<= 5", ranking="CSLS (stored hubness)", top1=m["cross_modal_top1_csls"],
                 **common)


if __name__ == "__main__":
    main()
