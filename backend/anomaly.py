"""Unsupervised anomaly scores per feature set (pyod detectors) and one combined ranking over the joint features.

Per space, the scores are stored with the map, as columns of `maps__<space>`: `anomaly_<method>`
(raw, larger = more anomalous) and `anomaly`, the mean of their percentile ranks in [0, 1]. A measured
parameter set (morphology parameters, spectral indices: a few named columns) blends by the highest
percentile instead: an object at the tail of one parameter is odd even where the other detectors,
kNN above all, miss a group of alike oddities (mean share of a planted class in the top 500, seeds 0
and 2: morphology 0.47 -> 0.56 and 0.44 -> 0.50, spectral indices 0.17 -> 0.29 and 0.18 -> 0.30;
in the 64-d embedding spaces the highest lost to the mean, 0.54 -> 0.49 in `arp-morphology`). Methods:
`ecod` (pyod ECOD, empirical-CDF tails), `iforest` (pyod IForest), `knn` (pyod KNN, mean distance to
the k nearest), `lof` (pyod LOF). The combined ranking (table `anomalies`) is the kNN score in the
joint features: the first components of every ranking set (shape space, spectrum space, morphology
parameters), each scaled to unit RMS, side by side (backend.features.joint). An object is odd when
it is far from every other in shape, measured morphology and spectrum together; on the seed-0 demo
this ranked 0.75 planted rare objects in its top 100 against 0.38 for the highest per-set score.
Each row also keeps its per-set scores (`anomaly__<set>`) and `best_set`, the set where it ranks highest.
No catalogue or truth column is ever read here: only the vectors and the measured parameters (morph_*, line_*).
Past FIT_SIZE rows (a million-object atlas) IForest, KNN and LOF are fitted on a random sample of FIT_SIZE rows
and score the rest in chunks (KNN: mean distance to the k nearest sample rows, through a pynndescent index;
pyod's ball tree took minutes per 100k rows in 64 dimensions); ECOD, linear in the rows, is fitted on all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from backend import maps, schema
from backend.features import (
    DEFAULT_COMPONENTS,
    PARAMETER_SETS,
    FeatureSet,
    anomaly_features,
    joint,
    joint_sets,
    space_features,
)
from backend.store import Atlas, AtlasError, where_in

METHODS = ("ecod", "iforest", "knn", "lof")
DEFAULT_METHODS = ("ecod", "iforest", "knn")
JOINT_METHODS = ("knn",)  # of the combined ranking (ECOD and IForest on the joint features: p@100 0.52 vs 0.75, seed-0 demo)
JOINT_NEIGHBOURS = 50  # k of the joint kNN: a group of up to k alike oddities still stands out (k 10-50: p@100 0.71-0.75)
FIT_SIZE = 20_000  # past this many rows the detectors are fitted on a sample and score the rest
SCORE_BATCH = 50_000
SAMPLE_MIN_K = 5  # fewest sample neighbours of the sampled kNN score
ANOMALIES = schema.ANOMALIES  # table of the combined ranking
BLENDS = ("mean", "max")  # how the detectors' percentile ranks make `anomaly`


def features(atlas: Atlas, space: str, n_components: int = DEFAULT_COMPONENTS, seed: int = 42) -> tuple[list[str], np.ndarray]:
    """Ids and PCA-reduced, L2-normalised vectors of a space (see backend.features.space_features)."""
    fs = space_features(atlas, space, n_components, seed)
    return fs.ids, fs.X


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties averaged)."""
    if len(values) < 2:
        return np.zeros(len(values))
    return (rankdata(values) - 1.0) / (len(values) - 1.0)


def _detector(method: str, k: int, seed: int):  # noqa: ANN202 - pyod imported lazily (numba start-up)
    if method == "ecod":
        from pyod.models.ecod import ECOD

        return ECOD()
    if method == "iforest":
        from pyod.models.iforest import IForest

        return IForest(n_estimators=200, random_state=seed, n_jobs=1)
    if method == "knn":
        from pyod.models.knn import KNN

        return KNN(n_neighbors=k, method="mean")
    from pyod.models.lof import LOF

    return LOF(n_neighbors=max(k, 20))


def score(
    X: np.ndarray, methods: Sequence[str] = DEFAULT_METHODS, *, k: int = 10, seed: int = 0, fit_size: int = FIT_SIZE,
    blend: str = "mean",
) -> pd.DataFrame:
    """Anomaly scores of each row of X (larger = more anomalous) and `anomaly`, the mean (or max) of their percentile ranks.

    Past `fit_size` rows the detectors (but ECOD) are fitted on a random sample and score the other rows.
    """
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"unknown anomaly methods {sorted(unknown)}; choose from {METHODS}")
    if blend not in BLENDS:
        raise ValueError(f"unknown blend {blend!r}; choose from {BLENDS}")
    k = max(1, min(k, len(X) - 2, fit_size - 2))
    X = np.asarray(X, np.float64)
    if len(X) <= fit_size:
        out = {f"anomaly_{m}": _detector(m, k, seed).fit(X).decision_scores_ for m in methods}
    else:
        fit_idx = np.sort(np.random.default_rng(seed).choice(len(X), fit_size, replace=False))
        # the k-th nearest of a sample holding a fraction f of the rows sits near the (k / f)-th of all: kNN keeps
        # its scale with k * f sample neighbours (at least SAMPLE_MIN_K); 50 of a 2% sample took 690 s for 1M rows
        k_sample = max(SAMPLE_MIN_K, round(k * fit_size / len(X)))
        out = {f"anomaly_{m}": _sampled_scores(m, X, fit_idx, k_sample if m == "knn" else k, seed) for m in methods}
    frame = pd.DataFrame(out)
    ranks = [percentile_rank(frame[c].to_numpy()) for c in out]
    frame["anomaly"] = np.max(ranks, axis=0) if blend == "max" else np.mean(ranks, axis=0)
    return frame


def _sampled_scores(method: str, X: np.ndarray, fit_idx: np.ndarray, k: int, seed: int) -> np.ndarray:
    """One detector's scores of every row of X, fitted on the rows `fit_idx` (ECOD: on all rows)."""
    if method == "ecod":
        return _detector(method, k, seed).fit(X).decision_scores_
    detector = _detector(method, k, seed).fit(X[fit_idx])
    scores = np.empty(len(X))
    scores[fit_idx] = detector.decision_scores_
    rest = np.setdiff1d(np.arange(len(X)), fit_idx)
    if method == "knn":
        scores[rest] = _knn_mean_distance(X[fit_idx], X[rest], k, seed)
        return scores
    for start in range(0, len(rest), SCORE_BATCH):
        rows = rest[start : start + SCORE_BATCH]
        scores[rows] = detector.decision_function(X[rows])
    return scores


def _knn_mean_distance(sample: np.ndarray, rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Mean Euclidean distance of each of `rows` to its k nearest `sample` rows (pyod KNN's "mean" score)."""
    from pynndescent import NNDescent

    index = NNDescent(sample.astype(np.float32), metric="euclidean", n_neighbors=max(2 * k, 15), random_state=seed)
    index.prepare()
    out = np.empty(len(rows))
    for start in range(0, len(rows), SCORE_BATCH):
        _, dist = index.query(rows[start : start + SCORE_BATCH].astype(np.float32), k=k)
        out[start : start + len(dist)] = dist.mean(axis=1)
    return out


def score_set(fs: FeatureSet, methods: Sequence[str] = DEFAULT_METHODS, *, k: int = 10, seed: int = 0) -> pd.DataFrame:
    """`score` of a feature set with its object ids as the first column (a parameter set blended by the max)."""
    frame = score(fs.X, methods, k=k, seed=seed, blend="max" if fs.parameters else "mean")
    frame.insert(0, "object_id", fs.ids)
    return frame


def compute_anomalies(
    atlas: Atlas,
    space: str,
    methods: Sequence[str] = DEFAULT_METHODS,
    *,
    k: int = 10,
    n_components: int = DEFAULT_COMPONENTS,
    seed: int = 0,
    map_params: maps.MapParams | None = None,
) -> pd.DataFrame:
    """Score every object of a space and store the scores with its map (computing the map if missing)."""
    scores = score_set(anomaly_features(atlas, space_features(atlas, space, n_components)), methods, k=k, seed=seed)
    if maps.load_map(atlas, space) is None:
        maps.compute_map(atlas, space, map_params)
    stale = [f"anomaly_{m}" for m in METHODS if m not in methods]
    frame = maps.save_map_columns(atlas, space, scores, drop=stale)
    atlas.set_meta(f"anomaly:{space}", {"methods": list(methods), "k": k, "n_components": n_components, "seed": seed})
    return frame


def score_joint(sets: Mapping[str, FeatureSet], *, k: int = JOINT_NEIGHBOURS, seed: int = 0) -> tuple[FeatureSet, pd.DataFrame]:
    """The joint features of the sets (`features.joint_sets`) and every object's kNN anomaly in them."""
    fs = joint(joint_sets(dict(sets)))
    return fs, score_set(fs, JOINT_METHODS, k=k, seed=seed)


def combine(per_set: Mapping[str, pd.DataFrame], joint_scores: pd.DataFrame) -> pd.DataFrame:
    """One ranking: object_id, anomaly (the joint score), best_set, anomaly__<set> per set, rank."""
    if not per_set or joint_scores.empty:
        return pd.DataFrame(columns=["object_id", "anomaly", "best_set", "rank"])
    parts = [frame[["object_id", "anomaly"]].rename(columns={"anomaly": f"anomaly__{name}"}) for name, frame in per_set.items()]
    wide = joint_scores[["object_id", "anomaly"]]
    for part in parts:
        wide = wide.merge(part, on="object_id", how="left")
    values = wide[[f"anomaly__{name}" for name in per_set]].to_numpy(np.float64)
    filled = np.where(np.isfinite(values), values, -np.inf)
    wide["tiebreak"] = filled.max(axis=1)  # ties of the joint score are broken by the highest per-set score
    wide["best_set"] = np.asarray(list(per_set))[filled.argmax(axis=1)]
    wide = wide.sort_values(["anomaly", "tiebreak"], ascending=False, kind="stable").drop(columns="tiebreak")
    wide["rank"] = np.arange(1, len(wide) + 1)
    return wide.reset_index(drop=True)


def store_combined(atlas: Atlas, per_set: Mapping[str, pd.DataFrame], joint_scores: pd.DataFrame,
                   clusters: pd.DataFrame | None = None) -> pd.DataFrame:
    """Combine the scores and store the ranking as the `anomalies` table (with `clusters` columns when given), one commit."""
    ranking = combine(per_set, joint_scores)
    if clusters is not None:
        ranking = ranking.merge(clusters, on="object_id", how="left")
    atlas.replace(ANOMALIES, ranking)
    atlas.set_meta("anomaly:combined", {"sets": list(per_set), "n": len(ranking), "method": "knn on the joint features"})
    return ranking


def combined_ranking(atlas: Atlas) -> pd.DataFrame:
    """The stored combined ranking (most anomalous first), or an AtlasError when none was computed."""
    if not atlas.has_table(ANOMALIES):
        raise AtlasError("this atlas has no combined anomaly ranking yet; run embeddings.pipeline.discover first")
    return atlas.scan(ANOMALIES).sort_values("rank").reset_index(drop=True)


def ranked_parameter_sets(atlas: Atlas) -> list[str]:
    """The measured parameter sets that have their own scores in the stored combined ranking."""
    if not atlas.has_table(ANOMALIES):
        return []
    columns = set(atlas.columns(ANOMALIES))
    return [name for name in PARAMETER_SETS if f"anomaly__{name}" in columns]


def top_anomalies(atlas: Atlas, space: str | None = None, n: int = 100, score_column: str = "anomaly", columns: Sequence[str] = ("ra", "dec", "redshift", "thumbnail")) -> pd.DataFrame:
    """The n most anomalous objects of a space (scores from its stored map), of a measured parameter set (its column of
    the combined ranking), or of the combined ranking (space=None)."""
    if space is None:
        top = combined_ranking(atlas).head(n)
    elif space in PARAMETER_SETS:
        ranking = combined_ranking(atlas)
        if f"anomaly__{space}" not in ranking.columns:
            raise AtlasError(f"the combined ranking has no {space} scores; measure them and run the discovery again")
        top = ranking.nlargest(n, f"anomaly__{space}").reset_index(drop=True)
        top = top.rename(columns={"anomaly": "anomaly_combined", f"anomaly__{space}": "anomaly"})
    else:
        table = schema.maps_table(space)
        if score_column not in atlas.columns(table):
            raise AtlasError(f"space {space} has no {score_column!r} scores yet; run backend.anomaly.compute_anomalies first")
        ids = atlas.scan(table, ["object_id", score_column]).nlargest(n, score_column)["object_id"]  # two columns first
        rows = atlas.scan(table, where=where_in("object_id", list(ids))).set_index("object_id")
        top = rows.loc[[i for i in ids if i in rows.index]].reset_index()  # the map rows of the top n, best first
    meta = atlas.get_objects(list(top["object_id"]), list(columns))
    return top.merge(meta, on="object_id", how="left").reset_index(drop=True)

