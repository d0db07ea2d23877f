"""Every discovery product of an atlas from features computed once per set: maps, anomalies, clusters, ranking.

For each embedding space: its vectors are read and PCA-reduced once (backend.features), and that
one matrix feeds the UMAP map (first `pca_components` columns), the anomaly detectors and the
clusters of the anomalous tail; the map table is then written once with all its columns. The
measured parameter sets (morphology parameters, spectral indices) are scored and their tails clustered as more
feature sets; their scores and cluster labels live in the `anomalies` table. A spectrum space's own anomaly scores
are computed relative to objects at a similar redshift (features.anomaly_features). Last, the combined
ranking is stored (table `anomalies`): the kNN anomaly in the joint features of the unimodal spaces
and the morphology parameters (the cross-modal spaces left out where a unimodal space of their
modality exists, features.ranking_set_names; the spectral indices rank beside them, features.joint_sets),
with the clusters of its anomalous tail (rare.COMBINED).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from backend import anomaly, hubness, maps, rare
from backend.features import FeatureSet, anomaly_features, feature_sets, ranking_set_names
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
    tables: dict[str, pd.DataFrame] = {}
    labels_of_sets: dict[str, pd.DataFrame] = {}
    sets = feature_sets(atlas)
    for name, fs in sets.items():
        if fs.parameters:
            per_set[name], label_frame, tables[name] = score_parameters(fs, k=k)
            labels_of_sets[name] = label_frame
            say(f"{name}: anomaly scores and {len(tables[name])} clusters of {len(fs.ids)} objects")
            continue
        per_set[name] = discover_space(atlas, fs, map_params=map_params, k=k, say=say)
    names = ranking_set_names(atlas, list(per_set))
    joint_fs, joint_scores = anomaly.score_joint({name: sets[name] for name in names})
    labels, tables[rare.COMBINED] = rare.anomaly_clusters(joint_fs.X, joint_scores["anomaly"].to_numpy(), joint_fs.ids)
    columns = rare.label_columns(joint_fs.ids, labels, tables[rare.COMBINED])
    for label_frame in labels_of_sets.values():
        columns = columns.merge(label_frame, on="object_id", how="left")
    ranking = anomaly.store_combined(atlas, {name: per_set[name] for name in names}, joint_scores, columns)
    for name, table in tables.items():
        rare.store_table(atlas, name, table, on="anomalies", min_cluster_size=rare.TAIL_MIN_CLUSTER, min_samples=None)
    say(f"combined anomaly ranking over {', '.join(names)} and {len(tables[rare.COMBINED])} clusters stored")
    hubness.compute_hubness(atlas, say=say)
    return ranking


def score_parameters(fs: FeatureSet, *, k: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A measured parameter set's anomaly scores, the cluster columns of its anomalous tail (`cluster__<set>`,
    `cluster_rank__<set>`, kept in the `anomalies` table) and its cluster table."""
    scores = anomaly.score_set(fs, k=k)
    labels, table = rare.anomaly_clusters(fs.X, scores["anomaly"].to_numpy(), fs.ids)
    columns = rare.label_columns(fs.ids, labels, table)
    return scores, columns.rename(columns={"cluster": f"cluster__{fs.name}", "cluster_rank": f"cluster_rank__{fs.name}"}), table


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
