"""Every discovery product of an atlas from features computed once per set: maps, anomalies, clusters, ranking.

For each embedding space: its vectors are read and PCA-reduced once (backend.features), and that
one matrix feeds the UMAP map (first `pca_components` columns), the anomaly detectors and the
clusters of the anomalous tail; the map table is then written once with all its columns. The
morphology parameters, when measured, are scored as one more feature set. A spectrum space's own anomaly scores
are computed relative to objects at a similar redshift (features.anomaly_features). Last, the combined
ranking is stored (table `anomalies`): the kNN anomaly in the joint features of the unimodal spaces
and the morphology parameters (the cross-modal spaces left out where a unimodal space of their
modality exists, features.ranking_set_names), with the clusters of its anomalous tail (rare.COMBINED).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from backend import anomaly, hubness, maps, rare
from backend.features import MORPHOLOGY, FeatureSet, anomaly_features, feature_sets, ranking_set_names
from backend.store import Atlas


def discover(
    atlas: Atlas,
    *,
    map_params: maps.MapParams | None = None,
    k: int = 10,
    say: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Compute and store maps, per-set anomaly scores, rare clusters and the combined ranking; returns the ranking."""
    per_set: dict[str, pd.DataFrame] = {}
    sets = feature_sets(atlas)
    for name, fs in sets.items():
        if name == MORPHOLOGY:
            per_set[name] = anomaly.score_set(fs, k=k)
            say(f"morphology: anomaly scores of {len(fs.ids)} objects")
            continue
        per_set[name] = discover_space(atlas, fs, map_params=map_params, k=k, say=say)
    names = ranking_set_names(atlas, list(per_set))
    joint_fs, joint_scores = anomaly.score_joint({name: sets[name] for name in names})
    labels, table = rare.anomaly_clusters(joint_fs.X, joint_scores["anomaly"].to_numpy(), joint_fs.ids)
    ranking = anomaly.store_combined(atlas, {name: per_set[name] for name in names}, joint_scores,
                                     rare.label_columns(joint_fs.ids, labels, table))
    rare.store_table(atlas, rare.COMBINED, table, on="anomalies", min_cluster_size=rare.TAIL_MIN_CLUSTER, min_samples=None)
    say(f"combined anomaly ranking over {', '.join(names)} and {len(table)} clusters stored")
    hubness.compute_hubness(atlas, say=say)
    return ranking


def discover_space(
    atlas: Atlas, fs: FeatureSet, *, map_params: maps.MapParams | None = None, k: int = 10,
    say: Callable[[str], None] = print,
) -> pd.DataFrame:
    """The map, anomaly scores and rare clusters of one space's features, stored in one map write; returns the scores."""
    params = map_params or maps.MapParams()
    scores = anomaly.score_set(anomaly_features(atlas, fs), k=k)
    xy = maps.fit_map(fs.X[:, : params.pca_components], params)
    labels, table = rare.anomaly_clusters(fs.X, scores["anomaly"].to_numpy(), fs.ids)
    frame = scores.assign(x=xy[:, 0], y=xy[:, 1]).merge(rare.label_columns(fs.ids, labels, table), on="object_id")
    maps.store_map(atlas, fs.name, frame, params)
    rare.store_table(atlas, fs.name, table, on="anomalies", min_cluster_size=rare.TAIL_MIN_CLUSTER, min_samples=None)
    atlas.set_meta(f"anomaly:{fs.name}", {"methods": list(anomaly.DEFAULT_METHODS), "k": k,
                                           "n_components": fs.X.shape[1], "seed": 0})
    say(f"map {fs.name}: UMAP, anomaly scores and {len(table)} clusters stored")
    return scores
