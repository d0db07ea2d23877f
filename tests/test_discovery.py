"""Discovery products from features computed once: maps, per-set anomalies, rare clusters, combined ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import active, anomaly, maps, rare, schema, similar, tags
from backend.discovery import discover
from backend.features import MORPHOLOGY, SPECTRAL_INDICES, feature_sets
from backend.store import AtlasError
from tests.synthetic import IMAGE, SPECTRUM, build_synthetic

FAST = maps.MapParams(pca_components=8, n_neighbors=10, n_epochs=30)


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    from backend.store import open_atlas

    atlas = open_atlas(tmp_path_factory.mktemp("discover") / "atlas", create=True)
    objs = build_synthetic(atlas, n=400, n_rare=12).set_index("object_id")
    # morphology columns as an ingest would leave them: one object is odd only in its shape
    rng = np.random.default_rng(1)
    morph = pd.DataFrame({"object_id": objs.index, "morph_gini": rng.normal(0.6, 0.05, len(objs)),
                          "morph_asymmetry": rng.normal(0.05, 0.02, len(objs))})
    odd_shape = objs.index[~objs["is_rare"]][0]
    morph.loc[morph["object_id"] == odd_shape, "morph_asymmetry"] = 2.0
    # spectral indices: a tight group of 15 ordinary objects with deep Balmer absorption (each other's nearest)
    morph["line_hdelta_a"] = rng.normal(1.5, 1.0, len(objs))
    morph["line_ew_halpha"] = rng.normal(5.0, 4.0, len(objs))
    group = morph["object_id"].isin(objs.index[~objs["is_rare"]][1:16])
    morph.loc[group, "line_hdelta_a"], morph.loc[group, "line_ew_halpha"] = rng.normal(9.0, 0.05, 15), rng.normal(5.0, 0.05, 15)
    atlas.upsert("objects", morph)
    ranking = discover(atlas, map_params=FAST, say=lambda _: None)
    return atlas, objs, ranking, odd_shape


def test_each_space_map_is_written_once_with_all_its_columns(discovered):
    atlas, objs, _, _ = discovered
    for space in (IMAGE.name, SPECTRUM.name):
        frame = maps.load_map(atlas, space)
        assert len(frame) == len(objs)
        assert {"x", "y", "params_key", "anomaly", "anomaly_ecod", "anomaly_iforest", "anomaly_knn", "cluster", "cluster_rank"} <= set(frame.columns)
        assert len(atlas.table(schema.maps_table(space)).list_versions()) == 1
        assert maps.compute_map(atlas, space, FAST)["params_key"].iloc[0] == frame["params_key"].iloc[0]  # cached, not redone


def test_combined_ranking_puts_objects_odd_in_any_set_first(discovered):
    atlas, objs, ranking, odd_shape = discovered
    stored = anomaly.combined_ranking(atlas)
    assert stored["object_id"].tolist() == ranking["object_id"].tolist()
    assert {f"anomaly__{IMAGE.name}", f"anomaly__{SPECTRUM.name}", f"anomaly__{MORPHOLOGY}", "best_set"} <= set(stored.columns)
    top = stored.head(20)
    assert odd_shape in set(top["object_id"])  # odd only in the morphology parameters
    assert stored.set_index("object_id").loc[odd_shape, "best_set"] == MORPHOLOGY
    assert stored["anomaly"].is_monotonic_decreasing
    shown = anomaly.top_anomalies(atlas, None, n=5)
    assert shown["object_id"].tolist() == stored["object_id"].head(5).tolist() and "thumbnail" in shown.columns


def test_a_group_odd_in_one_spectral_index_tops_that_sets_ranking(discovered):
    atlas, objs, _, _ = discovered
    stored = anomaly.combined_ranking(atlas).set_index("object_id")
    group = objs.index[~objs["is_rare"]][1:16]
    scores = anomaly.score_set(feature_sets(atlas)[SPECTRAL_INDICES]).set_index("object_id")
    ranks = {m: anomaly.percentile_rank(scores[f"anomaly_{m}"].to_numpy()) for m in anomaly.DEFAULT_METHODS}
    in_group = scores.index.isin(group)
    assert np.median(ranks["knn"][in_group]) < 0.6  # among its own kind kNN sees nothing odd
    by_mean = anomaly.percentile_rank(np.mean(list(ranks.values()), axis=0))[in_group]
    by_max = anomaly.percentile_rank(stored.loc[scores.index, f"anomaly__{SPECTRAL_INDICES}"].to_numpy())[in_group]
    # the highest of the detectors' percentiles keeps the group near the top, where their mean would bury it
    assert np.median(by_max) >= 0.9 > np.median(by_mean) + 0.1
    assert (stored.loc[group, "best_set"] == SPECTRAL_INDICES).mean() > 0.5
    assert active.joint_features(atlas).X.shape[1] == 16 + 16 + 2  # image, spectrum, morphology; the indices beside
    labels = rare.cluster_frame(atlas, SPECTRAL_INDICES).set_index("object_id")["cluster"]
    home = int(labels.loc[group].mode().iloc[0])  # the group's own cluster, said in the parameters' words
    assert home >= 0 and (labels.loc[group] == home).mean() > 0.5
    column, inside, typical = rare.parameter_signatures(atlas, SPECTRAL_INDICES, [home])[home][0]
    assert column == "line_hdelta_a" and abs(inside - 9.0) < 0.5 and abs(typical - 1.5) < 0.5
    assert f"anomaly__{SPECTRAL_INDICES}" in set(stored.columns)


def test_a_parameter_set_blends_by_the_highest_detector_percentile():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (300, 3))
    frame = anomaly.score(X, blend="max")
    ranks = [anomaly.percentile_rank(frame[f"anomaly_{m}"].to_numpy()) for m in anomaly.DEFAULT_METHODS]
    assert np.allclose(frame["anomaly"], np.max(ranks, axis=0))
    with pytest.raises(ValueError, match="blend"):
        anomaly.score(X, blend="median")


def test_combined_ranking_has_clusters_of_its_anomalous_tail(discovered):
    atlas, objs, _, _ = discovered
    table = rare.clusters(atlas, rare.COMBINED)
    purity = [objs.loc[rare.members(atlas, rare.COMBINED, int(c)), "is_rare"].mean() for c in table["cluster"]]
    assert max(purity) >= 0.5  # the planted group gathers in one cluster of the joint features
    assert set(anomaly.combined_ranking(atlas).columns) >= {"cluster", "cluster_rank"}


def test_a_cluster_of_the_anomalous_tail_is_the_planted_group(discovered):
    atlas, objs, _, _ = discovered
    table = rare.clusters(atlas, IMAGE.name)
    found = []
    for row in table.itertuples():
        members = rare.members(atlas, IMAGE.name, int(row.cluster))
        assert set(row.exemplars) <= set(members)
        found += [row.rank] if objs.loc[members, "is_rare"].mean() >= 0.9 and len(members) >= 10 else []
    assert found  # the toy's planted group is compact but not far out (its kNN density is ordinary), so any rank


def test_combined_ranking_follows_the_joint_score_and_names_the_best_set():
    a = pd.DataFrame({"object_id": ["x", "y", "z"], "anomaly": [0.9, 0.1, 0.5]})
    b = pd.DataFrame({"object_id": ["x", "y", "z"], "anomaly": [0.2, 0.95, 0.5]})
    joint = pd.DataFrame({"object_id": ["z", "x", "y"], "anomaly": [0.1, 0.5, 0.9]})
    out = anomaly.combine({"image": a, "spectrum": b}, joint)
    assert out["object_id"].tolist() == ["y", "x", "z"]
    assert out["anomaly"].tolist() == [0.9, 0.5, 0.1] and out["anomaly__image"].tolist() == [0.1, 0.9, 0.5]
    assert out["best_set"].tolist() == ["spectrum", "image", "image"]
    assert out["rank"].tolist() == [1, 2, 3]


def test_more_like_these_ranks_the_seeds_class_first(discovered):
    atlas, objs, _, _ = discovered
    rare_ids = objs.index[objs["is_rare"]].tolist()
    found = similar.more_like_these(atlas, rare_ids[:3], n=9)
    assert not set(found["object_id"]) & set(rare_ids[:3])
    assert objs.loc[found["object_id"], "is_rare"].mean() >= 0.8
    one_space = similar.more_like_these(atlas, rare_ids[:3], IMAGE.name, n=9)
    assert objs.loc[one_space["object_id"], "is_rare"].mean() >= 0.8
    with pytest.raises(AtlasError, match="at least 3"):
        similar.more_like_these(atlas, rare_ids[:2])


def test_tags_from_any_page_feed_the_combined_rerank_and_the_found_curve(discovered):
    atlas, objs, _, _ = discovered
    assert active.found_curve(atlas).empty
    rare_ids = objs.index[objs["is_rare"]].tolist()
    common = objs.index[~objs["is_rare"]].tolist()
    tags.add_tag(atlas, rare_ids[0], "merger")  # e.g. from the Galaxy page
    tags.add_tag(atlas, common[:3], tags.NOT_INTERESTING)  # e.g. a Map selection
    tags.add_tag(atlas, rare_ids[1], "interesting")
    curve = active.found_curve(atlas)
    assert curve["inspected"].tolist() == [1, 2, 3, 4, 5] and curve["found"].tolist() == [1, 1, 1, 1, 2]
    unsupervised = anomaly.combined_ranking(atlas)["object_id"]
    before = objs.loc[unsupervised[~unsupervised.isin([*rare_ids[:2], *common[:3]])].head(10), "is_rare"].sum()
    for method in active.METHODS:
        ranked = active.rerank(atlas, None, method=method)
        assert ranked["object_id"].head(2).tolist() == rare_ids[:2] or set(ranked["object_id"].head(2)) == set(rare_ids[:2])
        review = active.next_to_review(ranked, 10)
        assert objs.loc[review["object_id"], "is_rare"].sum() > before + 1  # objects like the two finds move up
        assert set(ranked["object_id"].tail(3)) == set(common[:3])


def test_feature_sets_hold_every_space_and_the_morphology(discovered):
    atlas, objs, _, _ = discovered
    sets = feature_sets(atlas)
    assert set(sets) == {IMAGE.name, SPECTRUM.name, MORPHOLOGY, SPECTRAL_INDICES}
    assert sets[MORPHOLOGY].X.shape == (len(objs), 2) and sets[SPECTRAL_INDICES].X.shape == (len(objs), 2)
    assert np.isfinite(sets[MORPHOLOGY].X).all()


def test_ranking_leaves_out_an_aligned_space_when_a_unimodal_one_of_its_modality_exists(discovered):
    from backend.features import ranking_set_names
    from backend.spaces import SpaceInfo, register_space, write_vectors
    from backend.store import open_atlas

    atlas, objs, _, _ = discovered
    assert ranking_set_names(atlas, [IMAGE.name, SPECTRUM.name, MORPHOLOGY]) == [IMAGE.name, SPECTRUM.name, MORPHOLOGY]
    other = open_atlas(atlas.uri + "-unimodal", create=True)
    ids = objs.index[:20].tolist()
    shape = SpaceInfo("toy-morphology", "image", 4, "test-rev", "v1")  # a self-supervised image space, no group
    for info in (IMAGE, SPECTRUM, shape):
        register_space(other, info)
        write_vectors(other, info, ids, np.random.default_rng(0).normal(size=(20, info.dim)).astype(np.float32))
    names = [IMAGE.name, SPECTRUM.name, shape.name, MORPHOLOGY]
    # shape is ranked in the unimodal image space; the spectra keep the aligned space (no unimodal one)
    assert ranking_set_names(other, names) == [SPECTRUM.name, shape.name, MORPHOLOGY]


def test_a_spectrum_odd_for_its_redshift_ranks_first_only_relative_to_its_redshift():
    from backend.features import redshift_residuals

    rng = np.random.default_rng(3)
    z = rng.uniform(0.02, 0.4, 2000)
    X = np.stack([np.cos(8 * z), np.sin(8 * z), z], axis=1) + rng.normal(0, 0.01, (2000, 3))  # a curve ordered by z
    odd = int(np.argmin(np.abs(z - 0.1)))
    X[odd] = np.array([np.cos(8 * 0.3), np.sin(8 * 0.3), 0.3])  # a z = 0.3 spectrum at z = 0.1: ordinary globally
    plain = anomaly.score(X)["anomaly"].to_numpy()
    relative = anomaly.score(redshift_residuals(X, z))["anomaly"].to_numpy()
    assert np.argsort(-relative)[0] == odd
    assert odd not in np.argsort(-plain)[:20]
    z_missing = z.copy()
    z_missing[:5] = np.nan
    out = redshift_residuals(X, z_missing)
    assert np.isfinite(out).all() and np.allclose(out[:5], X[:5] - X[5:].mean(axis=0))
    few = X[:60]
    assert redshift_residuals(few, z[:60]) is few  # too few redshifts for a window of 50: unchanged


def test_only_spectrum_spaces_score_anomalies_relative_to_redshift(discovered):
    from backend.features import anomaly_features

    atlas, _, _, _ = discovered
    sets = feature_sets(atlas)
    assert anomaly_features(atlas, sets[IMAGE.name]) is sets[IMAGE.name]
    assert anomaly_features(atlas, sets[MORPHOLOGY]) is sets[MORPHOLOGY]
    relative = anomaly_features(atlas, sets[SPECTRUM.name])
    assert relative.ids == sets[SPECTRUM.name].ids and not np.allclose(relative.X, sets[SPECTRUM.name].X)
    stored = maps.load_map(atlas, SPECTRUM.name).set_index("object_id")["anomaly"].reindex(relative.ids).to_numpy()
    assert np.allclose(stored, anomaly.score(relative.X)["anomaly"].to_numpy())  # what discovery stored
