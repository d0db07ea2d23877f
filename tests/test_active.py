"""Active learning: a few user tags move similar objects up the anomaly list and dissimilar ones down."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import active, anomaly, maps, tags
from tests.synthetic import IMAGE, build_synthetic


def _precision(ranked: pd.DataFrame, truth: pd.Series, n: int) -> float:
    return float(truth.loc[ranked["object_id"].head(n)].mean())


def test_user_tags_rerank_the_anomaly_list(atlas):
    objs = build_synthetic(atlas, n=400, n_rare=12).set_index("object_id")
    maps.compute_map(atlas, IMAGE.name, maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=30))
    anomaly.compute_anomalies(atlas, IMAGE.name, ("knn",), k=5)  # knn alone ranks this toy's tight rare cluster low
    base = active.rerank(atlas, IMAGE.name, method="knn")
    assert base["user_score"].isna().all()
    assert np.array_equal(base["score"].to_numpy(), base["anomaly"].to_numpy())
    truth = objs["is_rare"]
    before = _precision(base, truth, 20)
    # the simulated user looks at the top 15 and tags what they see; one rare object found elsewhere gets tagged too
    for oid in base["object_id"].head(15):
        tags.add_tag(atlas, oid, "ring" if truth[oid] else tags.NOT_INTERESTING)
    found = truth[truth].index[0]
    tags.add_tag(atlas, found, "ring")
    ranked = active.rerank(atlas, IMAGE.name, method="knn")
    labelled = ranked["user_score"].notna()
    assert labelled.sum() == len(set(base["object_id"].head(15)) | {found})
    review = active.next_to_review(ranked, 20)
    assert truth.loc[review["object_id"]].mean() > max(before, 0.3)
    assert ranked["object_id"].iloc[0] == found  # confirmed objects lead the list
    assert ranked.loc[labelled & (ranked["user_score"] == 0), "score"].max() < ranked.loc[~labelled, "score"].min()
    stored = maps.load_map(atlas, IMAGE.name)
    assert "anomaly_active" in stored.columns
    tags.remove_tag(atlas, found, "ring")  # a removal takes the label away again
    assert found not in set(active.user_scores(atlas).index)
