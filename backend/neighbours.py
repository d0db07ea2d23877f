"""Nearest neighbours of a galaxy: in one space, across an aligned image/spectrum pair, or from a mixed query.

Filters (redshift range, survey, tag, any SQL over objects columns) are first estimated on a 100k-row sample of
the objects table by a plain scan; selective ones are then counted and listed through the table's scalar indexes
(BTREE on object_id, redshift, ra, dec; BITMAP on survey; built once per process for tables of ID_INDEX_MIN_ROWS
rows and more). Up to EXACT_MAX matching ids become an `object_id IN (...)` prefilter on the vectors table with
an exact (flat) scan of just those rows. (Searching the IVF index under that prefilter mask is faster, but
probing 40 of 1000 partitions finds only 3 of the 10 true neighbours of a filter selecting 0.3% of a 1M table
evenly, and probing enough partitions to fix that costs more than the flat scan.) Broader filters query the ANN
index with oversampling (k x total/matches x 2) and check the candidates against the filter on the objects
table by a plain scan (post-filter): for a range holding half the table the BTREE costs 2-3x more than a scan.
Filter columns are deliberately not denormalised into the vectors tables: rewriting them (merge_insert of new
columns) moves every row out of the IVF_PQ index until it is rebuilt, which would make unfiltered queries slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from backend import schema, tags
from backend.spaces import SpaceInfo, SpaceRef, list_spaces, read_vectors, space_name, space_table
from backend.store import Atlas, AtlasError, where_all, where_between, where_eq, where_in, with_retry

T = TypeVar("T")
EXACT_MAX = 5_000
ID_INDEX_MIN_ROWS = 20_000  # tables this large get a BTREE index on object_id (id lookups 10x faster at 200k rows)
FILTER_INDEXES = {"object_id": "BTREE", "redshift": "BTREE", "ra": "BTREE", "dec": "BTREE", "survey": "BITMAP"}
_id_indexed: set[tuple[str, str]] = set()
PARAMS_TTL_S = 5.0
_params_cache: dict[tuple[str, str], tuple[float, dict]] = {}
DEFAULT_SEARCH = {"metric": "cosine", "nprobes": 20, "refine_factor": 20}
META_COLUMNS = ("survey", "ra", "dec", "redshift", "thumbnail")
Space = SpaceRef | Sequence[SpaceRef]  # one space, or several aligned spaces for a mixed query


@dataclass(frozen=True)
class Direction:
    """One search offered for an object: its vector(s) in `query` against the `target` space."""

    query: tuple[SpaceInfo, ...]  # one space, or several of one aligned group (mixed: mean of their vectors)
    target: SpaceInfo

    @property
    def mixed(self) -> bool:
        """Whether the query mixes several spaces."""
        return len(self.query) > 1

    @property
    def group(self) -> str:
        """The aligned group the search stays in ("" for a search within one unaligned space)."""
        return self.target.aligned_group

    @property
    def label(self) -> str:
        """`image -> spectrum`, or `mixed (image + spectrum) -> image`."""
        source = " + ".join(q.modality for q in self.query)
        return f"mixed ({source}) -> {self.target.modality}" if self.mixed else f"{source} -> {self.target.modality}"

    @property
    def query_name(self) -> str:
        """The query space's name, or the names joined by ` + ` for a mixed query."""
        return " + ".join(q.name for q in self.query)


def search_params(atlas: Atlas, space: SpaceRef) -> dict:
    """Query settings for a space's index: metric, nprobes, refine_factor (from `index:<space>` meta when built).

    Cached for PARAMS_TTL_S seconds per atlas and space, so a burst of queries reads the meta table once.
    """
    space = space_name(space)
    cache_key = (atlas.uri, space)
    hit = _params_cache.get(cache_key)
    if hit and time.monotonic() - hit[0] < PARAMS_TTL_S:
        return hit[1]
    stored = atlas.get_meta(f"index:{space}", {}) or {}
    params = dict(DEFAULT_SEARCH)
    for name in ("metric", "nprobes", "refine_factor"):
        if stored.get(name) is not None:
            params[name] = stored[name]
    if stored.get("distance_type"):
        params["metric"] = stored["distance_type"]
    _params_cache[cache_key] = (time.monotonic(), params)
    return params


def ensure_id_index(atlas: Atlas, table: str) -> None:
    """Give a large table scalar indexes once per process: object_id (BTREE) always, and on `objects` the
    filter columns of FILTER_INDEXES that it has (id lookups, filter counts and IN-prefilters use them)."""
    key = (atlas.uri, table)
    if key in _id_indexed or not atlas.has_table(table):
        return
    tbl = atlas.table(table)
    if tbl.count_rows() >= ID_INDEX_MIN_ROWS:
        have = {tuple(idx.columns) for idx in tbl.list_indices()}
        wanted = FILTER_INDEXES if table == schema.OBJECTS else {"object_id": "BTREE"}
        for column, kind in wanted.items():
            if column in tbl.schema.names and (column,) not in have:
                with_retry(lambda c=column, k=kind: tbl.create_scalar_index(c, index_type=k, replace=True), table)  # type: ignore[misc]
    _id_indexed.add(key)


def _normalise(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _spaces(atlas: Atlas) -> dict[str, SpaceInfo]:
    spaces = list_spaces(atlas)
    if not spaces:
        raise AtlasError(f"atlas {atlas.uri} has no embedding spaces yet; run `python -m embeddings embed` first")
    return spaces


def query_vector(atlas: Atlas, object_id: str, space: Space) -> np.ndarray:
    """The L2-normalised vector of an object in a space, or the normalised mean over several spaces (mixed)."""
    names = [space] if isinstance(space, str | SpaceInfo) else list(space)
    parts = []
    for name in names:
        ids, vec = read_vectors(atlas, name, [object_id])
        if not ids:
            raise AtlasError(f"object {object_id!r} has no vector in space {name}")
        parts.append(_normalise(vec[0]))
    return _normalise(np.mean(parts, axis=0)).astype(np.float32)


def _check_aligned(atlas: Atlas, query_spaces: list[str], target: str) -> None:
    spaces = _spaces(atlas)
    for name in [*query_spaces, target]:
        if name not in spaces:
            raise AtlasError(f"no space {name!r} in {atlas.uri}; spaces: {', '.join(sorted(spaces))}")
    for name in query_spaces:
        if not spaces[name].aligned_with(spaces[target]):
            raise AtlasError(
                f"spaces {name} and {target} are not aligned (different aligned_group), so a vector of one "
                "means nothing in the other; cross-modal search needs a contrastive pair"
            )


def filter_sql(where: str | None = None, *, z_range: tuple[float, float] | None = None, survey: str | Sequence[str] | None = None) -> str | None:
    """Combine a free SQL condition over objects columns with redshift-range and survey filters."""
    z_part = None if z_range is None else where_between("redshift", *z_range)
    survey_part = where_in("survey", [survey] if isinstance(survey, str) else survey) if survey else None
    return where_all(where, z_part, survey_part)


def allowed_ids(atlas: Atlas, where: str | None = None, tag: str | None = None) -> set[str] | None:
    """Ids passing a SQL filter over objects and/or carrying a tag (None when nothing filters)."""
    ids: set[str] | None = None
    if where:
        ids = set(_objects_where(atlas, ["object_id"], where)["object_id"])
    if tag:
        tagged = set(tags.tagged_ids(atlas, tag))
        ids = tagged if ids is None else ids & tagged
    return ids


def _filtered(read: Callable[[], T], where: str) -> T:
    """Run a read of objects under a user's filter; a filter Lance rejects becomes an AtlasError naming it."""
    try:
        return read()
    except Exception as exc:  # lance reports bad SQL as ValueError/RuntimeError
        raise AtlasError(f"bad filter {where!r}: {exc}") from exc


def _objects_where(atlas: Atlas, columns: list[str], where: str) -> pd.DataFrame:
    return _filtered(lambda: atlas.objects(columns, where=where), where)


def _estimate_where(atlas: Atlas, where: str) -> int:
    return _filtered(lambda: atlas.estimate_count(schema.OBJECTS, where), where)


def _scan_where(atlas: Atlas, where: str) -> set[str]:
    return _filtered(lambda: set(atlas.scan_ids_unindexed(schema.OBJECTS, where)), where)


def _count_where(atlas: Atlas, where: str) -> int:
    return _filtered(lambda: atlas.count(schema.OBJECTS, where), where)


def search(
    atlas: Atlas,
    vector: np.ndarray,
    space: SpaceRef,
    k: int = 12,
    *,
    where: str | None = None,
    allowed: set[str] | None = None,
    exclude: Sequence[str] = (),
    nprobes: int | None = None,
    refine_factor: int | None = None,
) -> pd.DataFrame:
    """k nearest rows of `space` to a vector: object_id, distance (index metric), similarity (cosine).

    `where` (SQL over objects columns) and `allowed` (an id set) restrict the candidates: up to EXACT_MAX
    matching ids are passed to LanceDB as a prefilter with an exact scan; broader filters query the index
    with oversampling and check the candidates against the filter on the objects table.
    """
    table_name = space_table(space)
    ensure_id_index(atlas, table_name)
    tbl = atlas.table(table_name)
    params = search_params(atlas, space)
    nprobes = nprobes or params["nprobes"]
    refine_factor = refine_factor or params["refine_factor"]
    vector = _normalise(np.asarray(vector, np.float32))
    cosine = params["metric"] == "cosine"
    cols = ["object_id", "_distance"] if cosine else ["object_id", "vector", "_distance"]
    fetch = k + len(exclude)

    def run(limit: int, prefilter: str | None = None) -> pd.DataFrame:
        q = tbl.search(vector, vector_column_name="vector").distance_type(params["metric"]).select(cols).limit(limit)
        if prefilter:
            return q.where(prefilter, prefilter=True).bypass_vector_index().to_pandas()
        refine = refine_factor if limit <= 100 else max(2, 2000 // limit)  # oversampled filter queries refine less
        return q.nprobes(nprobes).refine_factor(refine).to_pandas()

    n_match = None
    if where and allowed is None:
        n_match = _estimate_where(atlas, where)
        if n_match <= 2 * EXACT_MAX:  # selective: count and list the ids through the scalar indexes
            n_match = _count_where(atlas, where)
        if n_match <= EXACT_MAX:
            allowed, where = set(_objects_where(atlas, ["object_id"], where)["object_id"]), None
    elif where and allowed is not None:
        allowed, where = allowed & set(_objects_where(atlas, ["object_id"], where)["object_id"]), None
    if allowed is not None:
        found = run(fetch, where_in("object_id", sorted(allowed))) if allowed else pd.DataFrame(columns=cols)
    elif where:
        total = max(atlas.count(table_name), 1)
        limit = int(min(fetch * total / max(n_match or 1, 1) * 2 + 10, 20_000))
        while True:
            found = run(limit)
            if found.empty:
                break
            ok = _scan_where(atlas, where_all(where, where_in("object_id", list(found["object_id"]))) or "")
            found = found[found["object_id"].isin(ok)]
            if len(found) >= fetch or limit >= min(total, 20_000):
                break
            limit = min(limit * 4, 20_000)
    else:
        found = run(fetch)
    found = found[~found["object_id"].isin(set(exclude))].head(k)
    dist = found["_distance"].to_numpy(dtype=np.float64)
    if cosine:
        sim = 1.0 - dist
    elif len(found):
        sim = _normalise(np.stack(found["vector"].to_numpy()).astype(np.float32)) @ vector
    else:
        sim = np.zeros(0)
    return pd.DataFrame({"object_id": found["object_id"].to_numpy(), "similarity": sim, "distance": dist})


def _drop_same_source(frame: pd.DataFrame, ra0: float, dec0: float, arcsec: float) -> pd.DataFrame:
    """Drop rows within `arcsec` of the query position, and later rows within `arcsec` of a kept row."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    if frame.empty:
        return frame
    coords = SkyCoord(frame["ra"].to_numpy() * u.deg, frame["dec"].to_numpy() * u.deg)
    keep = coords.separation(SkyCoord(ra0 * u.deg, dec0 * u.deg)).arcsec > arcsec
    kept: list[int] = []
    for i in np.flatnonzero(keep):
        if kept and (coords[i].separation(coords[kept]).arcsec <= arcsec).any():
            continue
        kept.append(int(i))
    return frame.iloc[kept]


def neighbours(
    atlas: Atlas,
    object_id: str,
    space: Space | None = None,
    target_space: SpaceRef | None = None,
    k: int = 12,
    where: str | None = None,
    *,
    z_range: tuple[float, float] | None = None,
    survey: str | Sequence[str] | None = None,
    tag: str | None = None,
    exclude_same_source_arcsec: float | None = None,
    include_self: bool = False,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """k nearest neighbours of an object, with similarity and metadata.

    `space` is one space, or a list of aligned spaces for a mixed query (mean of normalised vectors);
    `target_space` (default: `space`, or the first of the list) is searched, so an image space with a spectrum
    `target_space` of the same aligned pair is a cross-modal query. Filters: `where` (SQL over objects
    columns), `z_range`, `survey`, `tag`; `exclude_same_source_arcsec` drops other entries of the same sky source.
    """
    spaces = _spaces(atlas)
    ensure_id_index(atlas, schema.OBJECTS)
    if space is None:
        space = next((n for n, s in spaces.items() if s.modality == "image"), next(iter(spaces)))
    query_spaces = [space_name(s) for s in ([space] if isinstance(space, str | SpaceInfo) else space)]
    target = space_name(target_space) if target_space is not None else query_spaces[0]
    _check_aligned(atlas, query_spaces, target)
    vector = query_vector(atlas, object_id, query_spaces)
    allowed = allowed_ids(atlas, None, tag)
    extra = 3 * k if exclude_same_source_arcsec else 0
    exclude = () if include_self else (object_id,)
    sql = filter_sql(where, z_range=z_range, survey=survey)
    found = search(atlas, vector, target, k + extra, where=sql, allowed=allowed, exclude=exclude)
    cols = list(dict.fromkeys([*META_COLUMNS, *(columns if columns is not None else atlas.label_columns())]))
    meta = atlas.get_objects(list(found["object_id"]), cols)
    out = found.merge(meta, on="object_id", how="left")
    if exclude_same_source_arcsec:
        me = atlas.get_objects([object_id], ["ra", "dec"])
        out = _drop_same_source(out, float(me["ra"].iloc[0]), float(me["dec"].iloc[0]), float(exclude_same_source_arcsec))
    out = out.head(k).reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def directions(atlas: Atlas, object_id: str) -> list[Direction]:
    """The searches available for an object: same-space, cross-modal (both ways) and mixed, per aligned group."""
    spaces = _spaces(atlas)
    has = {name: atlas.count(info.table, where_eq("object_id", object_id)) > 0 for name, info in spaces.items()}
    out = [Direction((info,), info) for name, info in spaces.items() if has[name]]
    groups: dict[str, list[SpaceInfo]] = {}
    for info in spaces.values():
        if info.aligned_group:
            groups.setdefault(info.aligned_group, []).append(info)
    for members in groups.values():
        present = tuple(m for m in members if has[m.name])
        out += [Direction((a,), b) for a in present for b in members if a.name != b.name]
        if len(present) >= 2:
            out += [Direction(present, b) for b in members]
    return out
