"""Active learning: a few user tags move similar objects up the anomaly list and dissimilar ones down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def _two_rare_groups() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A bulk, 60 isolated decoys and two tight rare groups: A ranked among the decoys, B just below all of them."""
    rng = np.random.default_rng(3)
    bulk = rng.normal(size=(600, 5))
    directions = rng.normal(size=(60, 5))
    decoys = 4.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    group_a = np.array([6.0, 0, 0, 0, 0]) + 0.2 * rng.normal(size=(12, 5))
    group_b = np.array([0, 0, 0, 0, -7.0]) + 0.2 * rng.normal(size=(12, 5))
    X = np.vstack([bulk, decoys, group_a, group_b])
    base = np.concatenate([rng.uniform(0.0, 0.8, 600), rng.uniform(0.9, 1.0, 60), rng.uniform(0.9, 1.0, 12),
                           rng.uniform(0.75, 0.85, 12)])
    truth = np.r_[np.zeros(660, bool), np.ones(24, bool)]
    group = np.r_[np.full(660, ""), np.full(12, "A"), np.full(12, "B")]
    return X, base, truth, group


def _simulated_user(X: np.ndarray, base: np.ndarray, truth: np.ndarray, inspected: int) -> np.ndarray:
    labelled: list[int] = []
    score = base.copy()
    while len(labelled) < inspected:
        seen = set(labelled)
        labelled += [int(i) for i in np.argsort(-score, kind="stable") if int(i) not in seen][: active.ROUND]
        idx = np.array(labelled)
        score, _ = active.blend(X, base, idx, truth[idx].astype(float), method="search")
    return np.array(labelled)


def test_search_finds_more_than_the_anomaly_list_and_explores_a_group_it_ranks_low(monkeypatch):
    X, base, truth, group = _two_rare_groups()
    unsupervised = int(truth[np.argsort(-base)[:40]].sum())
    reviewed = _simulated_user(X, base, truth, 40)
    assert int(truth[reviewed].sum()) >= unsupervised + 8  # confirmed finds pull in the rest of their group
    assert (group[reviewed] == "B").sum() >= 6  # the novelty share reached group B, then relevance took over
    monkeypatch.setattr(active, "EXPLORE", 0)  # without exploration, group B stays behind the decoys longer
    greedy = _simulated_user(X, base, truth, 40)
    assert (group[greedy] == "B").sum() <= 2 and truth[greedy].sum() < truth[reviewed].sum()


def test_search_pages_mix_relevance_and_novelty_and_keep_labels_at_the_ends():
    X, base, truth, _ = _two_rare_groups()
    labelled = np.argsort(-base)[:30]  # 6 rare among them
    score, proba = active.blend(X, base, labelled, truth[labelled].astype(float), method="search")
    order = [i for i in np.argsort(-score, kind="stable") if i not in set(labelled)]
    assert len(set(order[: active.INTERLEAVED])) == active.INTERLEAVED
    positives, negatives = labelled[truth[labelled]], labelled[~truth[labelled]]
    assert score[positives].min() > score[order[0]] > score[order[-1]] > score[negatives].max()
    assert proba.shape == (len(X),) and 0.0 <= proba.min() <= proba.max() <= 1.0
    with pytest.raises(ValueError, match="unknown active-learning method"):
        active.blend(X, base, labelled, truth[labelled].astype(float), method="gp")


def test_interleave_takes_each_list_by_its_share_without_repeats():
    a, b = np.arange(10), np.arange(10)[::-1]
    out = active.interleave([a, b], [3, 1], skip=np.array([0]), n=8)
    assert len(set(out.tolist())) == 8 and 0 not in out
    assert out.tolist()[:4] == [1, 2, 9, 3]
