"""2-D maps of a space: PCA pre-reduction then UMAP, cached in `maps__<space>` keyed by a parameter hash.

The maps table has one row per object: object_id, x, y, params_key, and the columns the rare/anomaly
module adds (cluster, cluster_rank, anomaly, anomaly_knn, anomaly_iforest, anomaly_lof). Past `fit_size`
objects, UMAP is fitted on a random sample and the rest is placed with the fitted model in batches.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from backend import schema
from backend.spaces import read_vectors, space_table
from backend.store import Atlas, AtlasError

Progress = Callable[[float, str], None]
TRANSFORM_BATCH = 20_000


@dataclass(frozen=True)
class MapParams:
    """Parameters of a UMAP map; their hash keys the cached table."""

    pca_components: int = 50
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    fit_size: int = 100_000
    n_epochs: int | None = None
    seed: int | None = None  # None: UMAP runs multi-threaded (not bit-reproducible); an int: reproducible, one thread

    def key(self, n_vectors: int) -> str:
        payload = json.dumps({**asdict(self), "n_vectors": n_vectors}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:12]


def reduce(vectors: np.ndarray, n_components: int = 50, seed: int = 42, fit_size: int = 100_000) -> np.ndarray:
    """L2-normalise then PCA-reduce vectors (fitted on at most `fit_size` rows); returns float32."""
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    n_components = min(n_components, v.shape[1], len(v))
    if n_components >= v.shape[1]:
        return v.astype(np.float32)
    rng = np.random.default_rng(seed)
    fit_rows = v if len(v) <= fit_size else v[rng.choice(len(v), fit_size, replace=False)]
    pca = PCA(n_components=n_components, random_state=seed).fit(fit_rows)
    return pca.transform(v).astype(np.float32)


def _umap(params: MapParams, n_fit: int):  # noqa: ANN202 - umap imported lazily (numba start-up)
    import umap

    return umap.UMAP(
        n_components=2,
        n_neighbors=min(params.n_neighbors, max(2, n_fit - 1)),
        min_dist=params.min_dist,
        metric=params.metric,
        n_epochs=params.n_epochs,
        random_state=params.seed,
        n_jobs=1 if params.seed is not None else -1,
        low_memory=False,
        verbose=False,
    )


def fit_map(reduced: np.ndarray, params: MapParams = MapParams(), progress: Progress | None = None) -> np.ndarray:
    """UMAP 2-D coordinates for reduced vectors: fit on all (or a sample past fit_size), transform the rest."""
    progress = progress or (lambda f, m: None)
    n = len(reduced)
    rng = np.random.default_rng(params.seed or 0)
    fit_idx = np.arange(n) if n <= params.fit_size else np.sort(rng.choice(n, params.fit_size, replace=False))
    model = _umap(params, len(fit_idx))
    progress(0.1, f"fitting UMAP on {len(fit_idx)} of {n} objects")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap warns about random_state disabling parallelism
        fitted = model.fit_transform(reduced[fit_idx])
    xy = np.empty((n, 2), np.float32)
    xy[fit_idx] = fitted
    rest = np.setdiff1d(np.arange(n), fit_idx)
    if len(rest):
        batches = range(0, len(rest), TRANSFORM_BATCH)
        for i, start in enumerate(tqdm(batches, desc="placing objects on the map", unit="batch")):
            rows = rest[start : start + TRANSFORM_BATCH]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xy[rows] = model.transform(reduced[rows])
            progress(0.5 + 0.5 * (i + 1) / len(batches), f"placed {min(start + TRANSFORM_BATCH, len(rest))}/{len(rest)}")
    return xy


def compute_map(
    atlas: Atlas, space: str, params: MapParams | None = None, *, force: bool = False, progress: Progress | None = None
) -> pd.DataFrame:
    """The UMAP map of a space (object_id, x, y, params_key, ...), computed and stored unless cached."""
    params = params or MapParams()
    n_vectors = atlas.count(space_table(space))
    if n_vectors < 5:
        raise AtlasError(f"space {space} has {n_vectors} vectors; a map needs at least 5")
    key = params.key(n_vectors)
    if not force:
        cached = load_map(atlas, space)
        if cached is not None and len(cached) and cached["params_key"].iloc[0] == key:
            return cached
    ids, vectors = read_vectors(atlas, space)
    xy = fit_map(reduce(vectors, params.pca_components, params.seed or 0, params.fit_size), params, progress)
    return store_map(atlas, space, pd.DataFrame({"object_id": ids, "x": xy[:, 0], "y": xy[:, 1]}), params)


def store_map(atlas: Atlas, space: str, frame: pd.DataFrame, params: MapParams | None = None) -> pd.DataFrame:
    """Write a whole map (object_id, x, y and any score/cluster columns) of a space in one commit."""
    params = params or MapParams()
    key = params.key(len(frame))
    frame = frame.assign(params_key=key)
    atlas.replace(schema.maps_table(space), frame)
    atlas.set_meta(f"map:{space}", {"params": asdict(params), "params_key": key, "n": len(frame)})
    return frame


def load_map(atlas: Atlas, space: str) -> pd.DataFrame | None:
    """The stored map of a space (with cluster/anomaly columns when computed), or None."""
    name = schema.maps_table(space)
    if not atlas.has_table(name):
        return None
    return atlas.scan(name)


def save_map_columns(atlas: Atlas, space: str, columns: pd.DataFrame, drop: Sequence[str] = ()) -> pd.DataFrame:
    """Add or overwrite per-object columns (indexed by object_id) of a stored map, dropping `drop`; returns the new map."""
    frame = load_map(atlas, space)
    if frame is None:
        raise AtlasError(f"space {space} has no map yet; compute it first (backend.maps.compute_map)")
    cols = columns.set_index("object_id") if "object_id" in columns.columns else columns
    frame = frame.drop(columns=[c for c in [*cols.columns, *drop] if c in frame.columns])
    frame = frame.merge(cols, left_on="object_id", right_index=True, how="left")
    atlas.replace(schema.maps_table(space), frame)
    return frame


def with_objects(atlas: Atlas, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Join objects columns (e.g. redshift, a label) onto a map frame for colouring or hover text."""
    wanted = [c for c in columns if c not in frame.columns]
    if not wanted:
        return frame
    objs = atlas.objects(["object_id", *wanted])
    return frame.merge(objs, on="object_id", how="left")


def sky_map(atlas: Atlas, columns: list[str] | None = None) -> pd.DataFrame:
    """The sky map: object_id, x = RA (deg), y = Dec (deg), plus any objects columns."""
    frame = atlas.objects(["object_id", "ra", "dec", *(columns or [])])
    return frame.rename(columns={"ra": "x", "dec": "y"})
