"""2-D maps of a space: PCA pre-reduction then UMAP, cached in `maps__<space>` keyed by a parameter hash.

The maps table has one row per object: object_id, x, y, params_key, and the columns the rare/anomaly
module adds (cluster, cluster_rank, anomaly, anomaly_knn, anomaly_iforest, anomaly_lof). Past `fit_size`
objects, UMAP is fitted on a random sample and every other object is placed at the inverse-distance-weighted
mean of the map positions of its PLACE_K nearest sample objects (nearest in the reduced space, found with the
fitted model's own neighbour index): UMAP's `transform` optimises each batch for epochs, which at 1M objects
took longer than the whole 15-minute budget on a 2-core box.
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
PLACE_BATCH = 50_000
PLACE_K = 10


@dataclass(frozen=True)
class MapParams:
    """Parameters of a UMAP map; their hash keys the cached table."""

    pca_components: int = 50
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    fit_size: int = 20_000  # UMAP is fitted on at most this many objects; the rest are placed from them
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
        progress(0.5, f"placing {len(rest)} objects from their nearest fitted neighbours")
        xy[rest] = place(model, reduced[fit_idx], fitted, reduced[rest], params.metric)
    return xy


def place(model: object, sample: np.ndarray, sample_xy: np.ndarray, rows: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Map positions of `rows` from their PLACE_K nearest `sample` rows (inverse-distance-weighted mean of those
    rows' positions `sample_xy`), searched with the UMAP model's neighbour index when it kept one."""
    index = getattr(model, "_knn_search_index", None)  # pynndescent index of the fitted rows (UMAP keeps it from 4,096 rows)
    k = min(PLACE_K, len(sample))
    if index is None:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(sample)
    out = np.empty((len(rows), 2), np.float32)
    for start in tqdm(range(0, len(rows), PLACE_BATCH), desc="placing objects on the map", unit="batch"):
        chunk = rows[start : start + PLACE_BATCH]
        if index is None:
            dist, idx = nn.kneighbors(chunk)
        else:
            idx, dist = index.query(chunk, k=k)
        w = 1.0 / (np.maximum(dist, 0.0) + 1e-6)
        out[start : start + len(chunk)] = (w[:, :, None] * sample_xy[idx]).sum(axis=1) / w.sum(axis=1, keepdims=True)
    return out


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
