"""Rare-morphology clusters: HDBSCAN on reduced vectors, clusters ranked by rarity, each with exemplars.

Rarity of a cluster is the mean percentile rank of three properties: small (few members), compact
(small spread around its centre), and far from the bulk (centre far from the median of all objects),
all measured in the PCA-reduced vector space (UMAP distances are not meaningful at large scale). Labels go into `maps__<space>` as `cluster` (-1 = noise) and
`cluster_rank` (1 = rarest); the cluster table is kept in atlas meta under `clusters:<space>`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend import maps
from backend.anomaly import DEFAULT_COMPONENTS, features, percentile_rank
from backend.store import Atlas, AtlasError

N_EXEMPLARS = 6


def cluster_labels(X: np.ndarray, *, min_cluster_size: int = 10, min_samples: int | None = None) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of the rows of X."""
    import hdbscan

    model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_method="leaf")
    return model.fit_predict(X.astype(np.float64))


def rank_clusters(X: np.ndarray, labels: np.ndarray, ids: list[str] | np.ndarray, n_exemplars: int = N_EXEMPLARS) -> pd.DataFrame:
    """One row per cluster: size, compactness, distance from the bulk, rarity, rank and exemplar ids."""
    ids = np.asarray(ids)
    bulk = np.median(X, axis=0)
    scale = np.median(np.linalg.norm(X - bulk, axis=1)) or 1.0
    rows = []
    for c in sorted(set(labels) - {-1}):
        members = np.flatnonzero(labels == c)
        centre = X[members].mean(axis=0)
        d = np.linalg.norm(X[members] - centre, axis=1)
        rows.append(
            {
                "cluster": int(c),
                "size": len(members),
                "spread": float(np.median(d) / scale),
                "distance_from_bulk": float(np.linalg.norm(centre - bulk) / scale),
                "exemplars": list(ids[members[np.argsort(d)[:n_exemplars]]]),
            }
        )
    table = pd.DataFrame(rows, columns=["cluster", "size", "spread", "distance_from_bulk", "exemplars"])
    if table.empty:
        return table.assign(rarity=[], rank=[])
    table["rarity"] = (
        percentile_rank(-table["size"].to_numpy(float))
        + percentile_rank(-table["spread"].to_numpy())
        + percentile_rank(table["distance_from_bulk"].to_numpy())
    ) / 3.0
    table = table.sort_values(["rarity", "size"], ascending=[False, True]).reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def find_clusters(
    atlas: Atlas,
    space: str,
    *,
    on: str = "pca",
    min_cluster_size: int = 10,
    min_samples: int | None = None,
    n_components: int = DEFAULT_COMPONENTS,
    n_exemplars: int = N_EXEMPLARS,
    map_params: maps.MapParams | None = None,
) -> pd.DataFrame:
    """Cluster a space (`on="pca"`: PCA-reduced vectors; `on="map"`: the 2-D UMAP map), rank by rarity, store labels."""
    if on not in ("map", "pca"):
        raise AtlasError(f"cluster on 'map' or 'pca', not {on!r}")
    frame = maps.load_map(atlas, space)
    if frame is None:
        frame = maps.compute_map(atlas, space, map_params)
    ids, X = features(atlas, space, n_components)
    if on == "map":
        xy = frame.set_index("object_id").loc[ids, ["x", "y"]].to_numpy(np.float64)
        labels = cluster_labels(xy, min_cluster_size=min_cluster_size, min_samples=min_samples)
    else:
        labels = cluster_labels(X, min_cluster_size=min_cluster_size, min_samples=min_samples)
    table = rank_clusters(X, labels, ids, n_exemplars)
    rank_of = dict(zip(table["cluster"], table["rank"], strict=True))
    maps.save_map_columns(
        atlas,
        space,
        pd.DataFrame({"object_id": ids, "cluster": labels.astype(np.int64), "cluster_rank": [rank_of.get(c, -1) for c in labels]}),
    )
    atlas.set_meta(
        f"clusters:{space}",
        {"on": on, "min_cluster_size": min_cluster_size, "min_samples": min_samples, "clusters": table.to_dict("records")},
    )
    return table


def clusters(atlas: Atlas, space: str) -> pd.DataFrame:
    """The stored cluster table of a space (rarest first), or an empty frame."""
    stored = atlas.get_meta(f"clusters:{space}")
    return pd.DataFrame(stored["clusters"]) if stored else pd.DataFrame(columns=["cluster", "size", "rarity", "rank", "exemplars"])


def members(atlas: Atlas, space: str, cluster: int) -> list[str]:
    """Ids of the objects in one cluster."""
    frame = maps.load_map(atlas, space)
    if frame is None or "cluster" not in frame.columns:
        raise AtlasError(f"space {space} has no clusters yet; run backend.rare.find_clusters first")
    return list(frame.loc[frame["cluster"] == cluster, "object_id"])
