"""Rare clusters and anomaly scores surface a small planted population; results are stored with the map."""

from __future__ import annotations

import numpy as np
import pytest

from backend import anomaly, maps, rare
from backend.store import AtlasError, open_atlas
from tests.synthetic import IMAGE, build_synthetic

FAST = maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=60)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    atlas = open_atlas(tmp_path_factory.mktemp("rare") / "atlas", create=True)
    objs = build_synthetic(atlas, n=400, n_rare=12).set_index("object_id")
    maps.compute_map(atlas, IMAGE.name, FAST)
    return atlas, objs


def test_the_planted_group_is_one_cluster_with_exemplars(toy):
    atlas, objs = toy
    table = rare.find_clusters(atlas, IMAGE.name, min_cluster_size=8)
    purity = {int(c): objs.loc[rare.members(atlas, IMAGE.name, int(c)), "is_rare"].mean() for c in table["cluster"]}
    planted = table.set_index("cluster").loc[max(purity, key=purity.get)]
    members = rare.members(atlas, IMAGE.name, int(planted.name))
    assert planted["size"] == len(members) and objs.loc[members, "is_rare"].mean() >= 0.9 and len(members) >= 10
    assert set(planted["exemplars"]) <= set(members) and len(planted["exemplars"]) == rare.N_EXEMPLARS
    assert (table["rarity"].diff().dropna() <= 1e-12).all() and table["rank"].tolist() == list(range(1, len(table) + 1))
    stored = maps.load_map(atlas, IMAGE.name)
    assert {"cluster", "cluster_rank", "x", "y"} <= set(stored.columns)
    assert (stored.loc[stored["object_id"].isin(members), "cluster_rank"] == planted["rank"]).all()
    assert rare.clusters(atlas, IMAGE.name)["cluster"].tolist() == table["cluster"].tolist()
    with pytest.raises(AtlasError, match="cluster on one of"):
        rare.find_clusters(atlas, IMAGE.name, on="tsne")


def test_anomaly_scores_are_stored_with_the_map_and_rank_the_planted_objects(toy):
    atlas, objs = toy
    rare.find_clusters(atlas, IMAGE.name, min_cluster_size=8)  # scores must land beside existing map columns
    frame = anomaly.compute_anomalies(atlas, IMAGE.name, ("iforest", "lof"), k=10)
    assert {"anomaly", "anomaly_iforest", "anomaly_lof", "x", "cluster"} <= set(frame.columns)
    assert "anomaly_knn" not in frame.columns
    assert frame["anomaly"].between(0, 1).all()
    top = anomaly.top_anomalies(atlas, IMAGE.name, n=12)
    assert objs.loc[top["object_id"], "is_rare"].mean() >= 0.75
    assert {"ra", "dec", "thumbnail"} <= set(top.columns)


def test_knn_distance_flags_isolated_points():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    X[:5] += 8.0 * rng.normal(size=(5, 5))  # five isolated objects
    scores = anomaly.score(X, ("knn",), k=5)
    assert set(np.argsort(-scores["anomaly_knn"].to_numpy())[:5]) == set(range(5))
    sampled = anomaly.score(X, ("knn", "iforest", "ecod"), k=5, fit_size=100)  # fit on 100 rows, score the other 200
    assert len(sampled) == 300 and np.isfinite(sampled.to_numpy()).all()
    assert set(np.argsort(-sampled["anomaly_knn"].to_numpy())[:5]) == set(range(5))
    assert sampled["anomaly"].to_numpy()[:5].min() > np.quantile(sampled["anomaly"], 0.9)
    with pytest.raises(ValueError, match="unknown anomaly methods"):
        anomaly.score(X, ("gmm",))
