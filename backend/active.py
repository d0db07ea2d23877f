"""Active learning from tags (Astronomaly-style): user labels re-rank the unsupervised anomaly list.

Labels come from current tags: `not-interesting` scores 0, `interesting` or any free tag (ring,
merger, lens, ...) scores 1. A regressor on the reduced vectors predicts the user's
score for every object (distance-weighted kNN over labelled objects by default, or a random forest);
the final score moves the unsupervised `anomaly` rank (in [0, 1]) up or down by that prediction,
trusted more near labelled objects:

    w = f + (1 - f) exp(-(d / d0)^2)   f = TRUST_FLOOR; d: distance to the nearest labelled object; d0: local scale (median 20-NN distance of labelled objects)
    score = anomaly + w * (2 * predicted - 1)     labelled objects: confirmed first, rejected last
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors

from backend import maps, tags
from backend.anomaly import DEFAULT_COMPONENTS, features
from backend.store import Atlas, AtlasError

NOT_INTERESTING = tags.NOT_INTERESTING
LABEL_NEIGHBOURS = 5  # labelled objects the user-score regressor averages (distance-weighted)
TRUST_FLOOR = 0.5  # weight of the regressor far from every label (it still generalises there)
SCALE_NEIGHBOURS = 20  # the local length scale d0: median distance of labelled objects to their 20th neighbour


def user_scores(atlas: Atlas) -> pd.Series:
    """Per labelled object: 1.0 when it carries `interesting` or any free tag, 0.0 when only `not-interesting`."""
    cur = tags.current_tags(atlas)
    if cur.empty:
        return pd.Series(dtype=float, name="user_score")
    positive = cur.assign(p=(cur["tag"] != NOT_INTERESTING).astype(float)).groupby("object_id")["p"].max()
    return positive.rename("user_score")


def blend(
    X: np.ndarray, base: np.ndarray, labelled: np.ndarray, y: np.ndarray, *, regressor: str = "knn", seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-ranked scores from base scores and labels y at row indices `labelled`; returns (score, predicted, weight)."""
    if len(labelled) == 0:
        return base.copy(), np.full(len(base), np.nan), np.zeros(len(base))
    if len(set(y)) == 1:
        predicted = np.full(len(X), float(y[0]))
    elif regressor == "forest":
        forest = RandomForestRegressor(n_estimators=200, random_state=seed, n_jobs=1)
        predicted = forest.fit(X[labelled], y).predict(X)
    else:
        knn = KNeighborsRegressor(n_neighbors=min(LABEL_NEIGHBOURS, len(labelled)), weights="distance")
        predicted = knn.fit(X[labelled], y).predict(X)
    k_scale = min(SCALE_NEIGHBOURS, len(X) - 1)
    d_local, _ = NearestNeighbors(n_neighbors=k_scale + 1).fit(X).kneighbors(X[labelled])
    d0 = float(np.median(d_local[:, -1])) or 1.0
    d_lab, _ = NearestNeighbors(n_neighbors=1).fit(X[labelled]).kneighbors(X)
    w = TRUST_FLOOR + (1.0 - TRUST_FLOOR) * np.exp(-((d_lab[:, 0] / d0) ** 2))
    score = base + w * (2.0 * predicted - 1.0)
    score[labelled] = np.where(y > 0.5, 2.0 + y, -1.0 + y)  # confirmed objects first, rejected last
    return score, predicted, w


def rerank(
    atlas: Atlas, space: str, *, n_components: int = DEFAULT_COMPONENTS, regressor: str = "knn", seed: int = 0, store: bool = True
) -> pd.DataFrame:
    """The anomaly list re-ranked by the user's tags: object_id, anomaly, user_score, predicted, weight, score (desc)."""
    frame = maps.load_map(atlas, space)
    if frame is None or "anomaly" not in frame.columns:
        raise AtlasError(f"space {space} has no anomaly scores yet; run backend.anomaly.compute_anomalies first")
    ids, X = features(atlas, space, n_components)
    base = frame.set_index("object_id")["anomaly"].reindex(ids).fillna(0.0).to_numpy()
    labels = user_scores(atlas)
    pos = {oid: i for i, oid in enumerate(ids)}
    known = [(pos[o], s) for o, s in labels.items() if o in pos]
    labelled = np.array([i for i, _ in known], dtype=np.int64)
    y = np.array([s for _, s in known], dtype=float)
    score, predicted, weight = blend(X, base, labelled, y, regressor=regressor, seed=seed)
    user = np.full(len(ids), np.nan)
    user[labelled] = y
    out = pd.DataFrame({"object_id": ids, "anomaly": base, "user_score": user, "predicted": predicted, "weight": weight, "score": score})
    if store:
        maps.save_map_columns(atlas, space, out[["object_id", "score"]].rename(columns={"score": "anomaly_active"}))
    return out.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def next_to_review(ranked: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The top of the re-ranked list that the user has not labelled yet."""
    return ranked[ranked["user_score"].isna()].head(n)
