"""Cross-modal re-ranking by CSLS (cross-domain similarity local scaling, Conneau et al. 2018, "Word translation
without parallel data"): a contrastive pair has hubs, targets near many queries of the other modality, which crowd
every cross-modal result. CSLS scores a target y for a query x as 2 cos(x, y) - r(y) (the query's own term is the
same for all its targets), where r(y) is the mean cosine of y to its k nearest vectors of the query space.

r is computed once per aligned pair by `discover` (against a random reference sample of at most REFERENCE_MAX query
vectors, the size it was checked at on the 10k demo: ~1 min a space at 1M objects, extrapolated from 41k x 20k
cosines in 5.2 s on the 2-core box) and stored in `hubness__<target space>` with its provenance in
`atlas_meta` (`hubness:<target space>`). Without that table cross-modal neighbours are ranked by cosine alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from backend.spaces import SpaceInfo, list_spaces, read_vectors
from backend.store import Atlas

HUBNESS_K = 10
REFERENCE_MAX = 10_000
BLOCK = 4096
META_PREFIX = "hubness:"
CACHE_ENTRIES = 4  # hubness tables kept per process: both directions of two pairs
_cache: dict[tuple[str, str, int], pd.Series] = {}


def hubness_table(space: str) -> str:
    """The table of a target space's hubness terms."""
    return f"hubness__{space}"


def partners(spaces: dict[str, SpaceInfo]) -> dict[str, str]:
    """Each space of an aligned group -> the first space of the same group in another modality."""
    out = {}
    for name, info in spaces.items():
        other = [n for n, s in spaces.items() if s.aligned_group and s.aligned_group == info.aligned_group
                 and s.modality != info.modality]
        if other:
            out[name] = sorted(other)[0]
    return out


def stored_queries(atlas: Atlas, tables: Iterable[str]) -> dict[str, str]:
    """Target space -> the query space its stored hubness terms are for, for the targets whose table is in `tables`."""
    present = set(tables)
    return {key.removeprefix(META_PREFIX): value.get("query_space", "")
            for key, value in atlas.meta_items(META_PREFIX).items()
            if hubness_table(key.removeprefix(META_PREFIX)) in present}


def mean_top_cosine(targets: np.ndarray, reference: np.ndarray, k: int = HUBNESS_K) -> np.ndarray:
    """r(y): the mean cosine of each target row to its k most similar reference rows (both sets normalised here)."""
    t = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    k = min(k, len(ref))
    out = np.empty(len(t), np.float64)
    for start in range(0, len(t), BLOCK):
        sims = t[start : start + BLOCK] @ ref.T
        out[start : start + BLOCK] = np.partition(sims, len(ref) - k, axis=1)[:, -k:].mean(axis=1)
    return out


def csls(similarity: np.ndarray, hub: np.ndarray) -> np.ndarray:
    """CSLS score of targets for one query, from their cosine similarities and hubness terms (higher is better)."""
    return 2.0 * np.asarray(similarity, np.float64) - np.asarray(hub, np.float64)


def compute_hubness(atlas: Atlas, say: Callable[[str], None] = print, seed: int = 0) -> list[str]:
    """Store the hubness terms of every space of an aligned pair against its partner; the spaces done."""
    done = []
    read: dict[str, tuple[list[str], np.ndarray]] = {}  # each space of a pair is a target once and a query once

    def vectors_of(space: str) -> tuple[list[str], np.ndarray]:
        if space not in read:
            read[space] = read_vectors(atlas, space)
        return read[space]

    for target, query in partners(list_spaces(atlas)).items():
        ids, vecs = vectors_of(target)
        ref = vectors_of(query)[1]
        if not len(ids) or not len(ref):
            continue
        if len(ref) > REFERENCE_MAX:
            ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), REFERENCE_MAX, replace=False))]
        hub = mean_top_cosine(vecs, ref)
        atlas.replace(hubness_table(target), pd.DataFrame({"object_id": ids, "hubness": hub.astype(np.float32)}))
        atlas.set_meta(META_PREFIX + target, {"query_space": query, "k": HUBNESS_K, "reference": int(len(ref)),
                                              "seed": seed})
        done.append(target)
        say(f"hubness of {target} against {query}: {len(ids)} objects (CSLS re-ranking of cross-modal neighbours)")
    return done


def hubness_for(atlas: Atlas, target: str, version: int, ids: np.ndarray) -> np.ndarray:
    """Stored hubness terms of `ids` in `target` (an id stored without one: the median). `version` is the hubness
    table's (the cache key: the table is read once per version and process, ~10 MB a million objects)."""
    key = (atlas.uri, target, int(version))
    series = _cache.get(key)
    if series is None:
        frame = atlas.scan(hubness_table(target), columns=["object_id", "hubness"])
        series = pd.Series(frame["hubness"].to_numpy(np.float64), index=pd.Index(frame["object_id"]))
        while len(_cache) >= CACHE_ENTRIES:
            _cache.pop(next(iter(_cache)))
        _cache[key] = series
    values = series.reindex(pd.Index(ids)).to_numpy(np.float64, copy=True)
    missing = ~np.isfinite(values)
    if missing.any():  # the median of the whole table only when an id lacks a term (not on every query)
        values[missing] = float(series.median()) if len(series) else 0.0
    return values
