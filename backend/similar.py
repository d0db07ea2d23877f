""""More like these": rank the whole atlas by a positive-unlabelled model fitted on a few chosen objects.

From 3 or more positives (objects the user tagged or selected), a logistic regression separates them
from the rest of the atlas treated as unlabelled (PU learning, Elkan & Noto 2008: the unlabelled set
is mostly negatives when the class is rare, so the classifier's ranking is the ranking of
P(positive)); a bagged version (`BAGS` random unlabelled subsets) keeps it stable. Features: one
space's reduced vectors, or (space=None) all feature sets side by side, the spectral indices included, with each
one's own anomaly score (backend.active.learner_features with `every_set`: precision@50 from 5 seeds 0.359 -> 0.390
and 0.299 -> 0.361 on the demos of seeds 0 and 2 against the active search's features, which leave the indices' columns out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from backend import active, anomaly
from backend.features import DEFAULT_COMPONENTS, FeatureSet
from backend.store import Atlas, AtlasError

MIN_POSITIVES = 3
BAGS = 5
UNLABELLED_PER_BAG = 2000


def pu_scores(X: np.ndarray, positives: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """P(positive)-like score of every row from positive row indices, the rest unlabelled (bagged logistic regression)."""
    rng = np.random.default_rng(seed)
    others = np.setdiff1d(np.arange(len(X)), positives)
    scores = np.zeros(len(X))
    for _ in range(BAGS):
        unl = rng.choice(others, size=min(UNLABELLED_PER_BAG, len(others)), replace=False)
        rows = np.concatenate([positives, unl])
        target = np.r_[np.ones(len(positives)), np.zeros(len(unl))]
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=500)
        scores += model.fit(X[rows], target).decision_function(X)
    return scores / BAGS


def more_like_these(
    atlas: Atlas, object_ids: Sequence[str], space: str | None = None, *, n: int = 50,
    n_components: int = DEFAULT_COMPONENTS, seed: int = 0,
) -> pd.DataFrame:
    """The n objects most like the given ones (which are left out): object_id, score (desc)."""
    if space is None:
        fs = active.learner_features(atlas, every_set=True)
    else:
        ids, X = anomaly.features(atlas, space, n_components)
        fs = FeatureSet(space, ids, X)
    positives = fs.rows(list(dict.fromkeys(object_ids)))
    if len(positives) < MIN_POSITIVES:
        where = "the atlas" if space is None else f"space {space}"
        raise AtlasError(f"'more like these' needs at least {MIN_POSITIVES} objects in {where}; got {len(positives)}")
    scores = pu_scores(fs.X, positives, seed=seed)
    scores[positives] = -np.inf
    order = np.argsort(-scores, kind="stable")[:n]
    return pd.DataFrame({"object_id": np.asarray(fs.ids)[order], "score": scores[order]})
