"""Unsupervised anomaly scores on reduced vectors: kNN distance, isolation forest, local outlier factor.

Scores are stored with the map, as columns of `maps__<space>`: anomaly_knn, anomaly_iforest,
anomaly_lof (raw, larger = more anomalous) and `anomaly`, the mean of their percentile ranks in [0, 1].
No catalogue or truth column is ever read here: only the vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor, NearestNeighbors

from backend import maps
from backend.spaces import read_vectors
from backend.store import Atlas, AtlasError

METHODS = ("knn", "iforest", "lof")
DEFAULT_COMPONENTS = 64  # PCA components kept (16 lost rare-object signal in the 128-d builtin space: p@100 0.27 vs 0.43)


def features(atlas: Atlas, space: str, n_components: int = DEFAULT_COMPONENTS, seed: int = 42) -> tuple[list[str], np.ndarray]:
    """Ids and PCA-reduced, L2-normalised vectors of a space (the input of clustering, anomalies, active learning)."""
    ids, vectors = read_vectors(atlas, space)
    if len(ids) < 5:
        raise AtlasError(f"space {space} has {len(ids)} vectors; need at least 5")
    return ids, maps.reduce(vectors, n_components, seed)


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties averaged)."""
    if len(values) < 2:
        return np.zeros(len(values))
    return (rankdata(values) - 1.0) / (len(values) - 1.0)


def score(X: np.ndarray, methods: Sequence[str] = METHODS, *, k: int = 10, seed: int = 0) -> pd.DataFrame:
    """Anomaly scores of each row of X (larger = more anomalous) and their rank-averaged blend `anomaly`."""
    unknown = set(methods) - set(METHODS)
    if unknown or not methods:
        raise ValueError(f"unknown anomaly methods {sorted(unknown)}; choose from {METHODS}")
    k = max(1, min(k, len(X) - 1))
    out = {}
    if "knn" in methods:
        dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
        out["anomaly_knn"] = dist[:, 1:].mean(axis=1)
    if "iforest" in methods:
        forest = IsolationForest(n_estimators=200, random_state=seed, n_jobs=1).fit(X)
        out["anomaly_iforest"] = -forest.score_samples(X)
    if "lof" in methods:
        lof = LocalOutlierFactor(n_neighbors=max(k, 20)).fit(X)
        out["anomaly_lof"] = -lof.negative_outlier_factor_
    frame = pd.DataFrame(out)
    frame["anomaly"] = np.mean([percentile_rank(frame[c].to_numpy()) for c in out], axis=0)
    return frame


def compute_anomalies(
    atlas: Atlas,
    space: str,
    methods: Sequence[str] = METHODS,
    *,
    k: int = 10,
    n_components: int = DEFAULT_COMPONENTS,
    seed: int = 0,
    map_params: maps.MapParams | None = None,
) -> pd.DataFrame:
    """Score every object of a space and store the scores with its map (computing the map if missing)."""
    ids, X = features(atlas, space, n_components)
    scores = score(X, methods, k=k, seed=seed)
    scores.insert(0, "object_id", ids)
    if maps.load_map(atlas, space) is None:
        maps.compute_map(atlas, space, map_params)
    stale = [c for c in ("anomaly_knn", "anomaly_iforest", "anomaly_lof") if c not in scores.columns]
    frame = maps.save_map_columns(atlas, space, scores)
    if stale:
        frame = frame.drop(columns=[c for c in stale if c in frame.columns])
    atlas.set_meta(f"anomaly:{space}", {"methods": list(methods), "k": k, "n_components": n_components, "seed": seed})
    return frame


def top_anomalies(atlas: Atlas, space: str, n: int = 100, score_column: str = "anomaly", columns: Sequence[str] = ("ra", "dec", "redshift", "thumbnail")) -> pd.DataFrame:
    """The n most anomalous objects of a space (scores from the stored map), with metadata."""
    frame = maps.load_map(atlas, space)
    if frame is None or score_column not in frame.columns:
        raise AtlasError(f"space {space} has no {score_column!r} scores yet; run backend.anomaly.compute_anomalies first")
    top = frame.nlargest(n, score_column)
    meta = atlas.get_objects(list(top["object_id"]), list(columns))
    return top.merge(meta, on="object_id", how="left").reset_index(drop=True)
