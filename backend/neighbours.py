"""Nearest neighbours of a galaxy: in one space, across an aligned image/spectrum pair, or from a mixed query.

Filters (redshift range, survey, tag, any SQL over objects columns) become a boolean mask over the objects rows:
redshift and survey from columns kept in memory per objects version (backend/rowmap.py), a SQL condition read
once per version and condition (through the scalar indexes: BTREE on object_id, redshift, ra, dec, BITMAP on
survey, built once per process for tables of ID_INDEX_MIN_ROWS rows and more), a tag from the tags table.
Up to EXACT_MAX matching vectors are read in one projected `take` by row offset and ranked exactly in numpy
(at 1M rows the former `object_id IN (...)` prefilter spent over a second finding 3,000 rows by id; probing the
IVF index under the mask instead finds only 3 of the 10 true neighbours of a filter selecting 0.3% of a 1M table
evenly). Broader filters query the ANN index with oversampling (k x total/matches x 2, more partitions when the
probed ones run out of matches) and keep the candidates the mask allows (post-filter). When even that comes back
short (a query far from every allowed object: a z = 0.25 galaxy's likes among z < 0.15), the matching vectors are
ranked exactly, over SCAN_MIN of them in one sequential pass of the vector column (at 1M rows 0.6-0.7 s against 1-3 s
for a take of 680k rows). Every index query asks for
PQ distances only and re-ranks its first refine_factor x k candidates exactly on their stored vectors, read in one
take: at 1M rows that is 2-3x faster than Lance's own refine step. Filter columns are deliberately not denormalised into the vectors tables:
rewriting them (merge_insert of new columns) moves every row out of the IVF_PQ index until it is rebuilt.
Atlas metadata (spaces, index settings, label columns) is read once per metadata version, not per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from backend import hubness, rowmap, schema, tags
from backend.spaces import SpaceInfo, SpaceRef, list_spaces, space_name, space_table
from backend.store import Atlas, AtlasError, where_all, where_between, where_in, with_retry

T = TypeVar("T")
EXACT_MAX = 50_000  # filters matching up to this many vectors are ranked exactly (the subset is cached)
ANN_LIMIT = 20_000  # most candidates one oversampled index query returns
MAX_PROBE_GROWTH = 16  # a broad filter short of matches probes up to this many times the index's partitions
SCAN_MIN = 200_000  # an exact search over more matching vectors reads the vector column in order, not by take
ID_INDEX_MIN_ROWS = 20_000  # tables this large get a BTREE index on object_id (id lookups 10x faster at 200k rows)
FILTER_INDEXES = {"object_id": "BTREE", "redshift": "BTREE", "ra": "BTREE", "dec": "BTREE", "survey": "BITMAP"}
_id_indexed: set[tuple[str, str]] = set()
_context_cache: dict[str, tuple[tuple, _Context]] = {}  # per atlas: (table list, meta and objects versions)
_table_cache: dict[tuple[str, str], Any] = {}  # LanceDB table handles by (atlas, table)
_dataset_cache: dict[tuple[str, str, int], Any] = {}  # Lance datasets by (atlas, table, version): warm caches
DATASET_CACHE = 32
PREWARM_MAX_ROWS = 5_000_000  # vector indexes of tables up to this size are loaded whole on first use (~170 MB per 1M x 128)
_prewarmed: set[str] = set()  # vector index uuids already in Lance's index cache
_tag_masks: dict[tuple[str, str, int, int], np.ndarray] = {}
CSLS_CANDIDATES = 48  # cross-modal queries re-rank this many cosine neighbours by CSLS (backend.hubness)
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
        """`image -> spectrum`, `mixed (image + spectrum) -> image`, or `image -> image (shape)` in a shape space."""
        source = " + ".join(q.modality for q in self.query)
        if self.mixed:
            return f"mixed ({source}) -> {self.target.modality}"
        return f"{source} -> {self.target.modality}" + (" (shape)" if self.target.derived_from else "")

    @property
    def query_name(self) -> str:
        """The query space's name, or the names joined by ` + ` for a mixed query."""
        return " + ".join(q.name for q in self.query)


def open_view(atlas: Atlas) -> View:
    """A view to share between `directions` and `neighbours` calls that belong together (one page run)."""
    return View(atlas)


def search_params(atlas: Atlas, space: SpaceRef) -> dict:
    """Query settings for a space's index: metric, nprobes, refine_factor (from `index:<space>` meta when built).

    Read with the rest of the atlas context once per version of the metadata table.
    """
    return View(atlas).params(space)


def _params(stored: dict) -> dict:
    params = dict(DEFAULT_SEARCH)
    for name in ("metric", "nprobes", "refine_factor"):
        if stored.get(name) is not None:
            params[name] = stored[name]
    if stored.get("distance_type"):
        params["metric"] = stored["distance_type"]
    return params


@dataclass(frozen=True)
class _Context:
    """What every call needs from atlas metadata: spaces, index settings per space, label columns."""

    spaces: dict[str, SpaceInfo]
    params: dict[str, dict]
    label_columns: list[str]
    hubness_query: dict[str, str]  # target space -> the query space its stored hubness terms are for (CSLS)


class View:
    """A view of an atlas for one call, or for the calls of one page run (`open_view`): the table list read once,
    each table and its Lance dataset opened once (at the version first seen), and the metadata context cached per
    (table list, metadata version, objects version) across calls."""

    def __init__(self, atlas: Atlas) -> None:
        self.atlas = atlas
        self.names = frozenset(atlas.table_names())
        self._tables: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._datasets: dict[str, Any] = {}
        key = (self.names, self.version(schema.META), self.version(schema.OBJECTS) if schema.OBJECTS in self.names else 0)
        hit = _context_cache.get(atlas.uri)
        if hit is None or hit[0] != key:
            stored = atlas.meta_items("index:")
            spaces = list_spaces(atlas)
            hit = key, _Context(spaces, {n: _params(stored.get(f"index:{n}") or {}) for n in spaces}, atlas.label_columns(),
                                hubness.stored_queries(atlas, self.names))
            _context_cache[atlas.uri] = hit
        self.ctx = hit[1]

    def table(self, name: str) -> Any:
        """A table of the atlas (AtlasError naming it when absent): one handle per table and process, since the
        connection's read consistency makes every `version` read see the latest commit (opening costs ~1.2 ms)."""
        if name not in self._tables:
            if name not in self.names:
                raise AtlasError(f"atlas {self.atlas.uri} has no table {name!r}")
            key = (self.atlas.uri, name)
            if key not in _table_cache:
                _table_cache[key] = self.atlas.db.open_table(name)
            self._tables[name] = _table_cache[key]
        return self._tables[name]

    def version(self, name: str) -> int:
        """The table's version when this view first asked (each ask is a round trip to LanceDB's event loop)."""
        if name not in self._versions:
            try:
                self._versions[name] = int(self.table(name).version)
            except Exception:  # a handle that lost its table (dropped, or its folder replaced): open it again
                _table_cache.pop((self.atlas.uri, name), None)
                self._tables.pop(name, None)
                self._versions[name] = int(self.table(name).version)
        return self._versions[name]

    def dataset(self, name: str) -> Any:
        """The table's Lance dataset at the version this view first saw (row offsets refer to it)."""
        if name not in self._datasets:
            self._datasets[name] = _dataset_at(self.atlas.uri, name, self.table(name), self.version(name))
        return self._datasets[name]

    def objects(self) -> rowmap.ObjectRows:
        """The objects row map at this view's objects version."""
        return rowmap.object_rows(self.atlas, self.dataset(schema.OBJECTS))

    def vector_rows(self, table: str) -> rowmap.VectorRows:
        """The row map of a vectors table onto the objects."""
        return rowmap.vector_rows(self.atlas, table, self.dataset(table), self.objects())

    def spaces(self) -> dict[str, SpaceInfo]:
        """The atlas's spaces (AtlasError when it has none)."""
        if not self.ctx.spaces:
            raise AtlasError(f"atlas {self.atlas.uri} has no embedding spaces yet; run `python -m embeddings embed` first")
        return self.ctx.spaces

    def params(self, space: SpaceRef) -> dict:
        """Query settings of a space's index."""
        return dict(self.ctx.params.get(space_name(space), DEFAULT_SEARCH))


def _dataset_at(uri: str, name: str, table: Any, version: int) -> Any:
    """The table's Lance dataset at `version` (its current one), shared across views: a dataset opened afresh reads
    its fragment and page metadata again (a 12-row take at 1M rows: 30 ms cold, 3 ms warm). A version never changes."""
    ds = _dataset_cache.get((uri, name, version))
    if ds is None:
        ds = table.to_lance()  # filed under its own version: a commit may land between the two reads
        while len(_dataset_cache) >= DATASET_CACHE:
            _dataset_cache.pop(next(iter(_dataset_cache)), None)
        _dataset_cache[(uri, name, int(ds.version))] = ds
        _prewarm_vector_indexes(ds)
    return ds


def _prewarm_vector_indexes(ds: Any) -> None:
    """Load a table's vector indexes into Lance's index cache once per index (uuid) and process, when the table has
    at most PREWARM_MAX_ROWS rows: otherwise each query's first visit to a partition reads it from disk (1M x 128:
    0.4 s and ~170 MB once, then an oversampled query takes 6 instead of 12 ms until every partition was seen)."""
    if ds.count_rows() > PREWARM_MAX_ROWS:
        return
    for index in ds.list_indices():
        if index.get("type", "").startswith("IVF") and index["uuid"] not in _prewarmed:
            ds.prewarm_index(index["name"])
            _prewarmed.add(index["uuid"])


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


def query_vector(atlas: Atlas, object_id: str, space: Space) -> np.ndarray:
    """The L2-normalised vector of an object in a space, or the normalised mean over several spaces (mixed)."""
    names = [space] if isinstance(space, str | SpaceInfo) else list(space)
    view = View(atlas)
    return _query_vector(view, int(view.objects().offsets([object_id])[0]), object_id, [space_name(n) for n in names])


def _query_vector(view: View, me: int, object_id: str, names: list[str]) -> np.ndarray:
    parts = []
    for name in names:
        table = space_table(name)
        row = view.vector_rows(table).by_object[me] if me >= 0 and table in view.names else -1
        if row < 0:
            raise AtlasError(f"object {object_id!r} has no vector in space {name}")
        parts.append(_normalise(rowmap.vector_matrix(view.dataset(table).take([int(row)], columns=["vector"]).column("vector"))[0]))
    return _normalise(np.mean(parts, axis=0)).astype(np.float32)


def _check_aligned(atlas: Atlas, spaces: dict[str, SpaceInfo], query_spaces: list[str], target: str) -> None:
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


def _filtered(read: Callable[[], T], where: str) -> T:
    """Run a read of objects under a user's filter; a filter Lance rejects becomes an AtlasError naming it."""
    try:
        return read()
    except Exception as exc:  # lance reports bad SQL as ValueError/RuntimeError
        raise AtlasError(f"bad filter {where!r}: {exc}") from exc


def _objects_where(atlas: Atlas, columns: list[str], where: str) -> pd.DataFrame:
    return _filtered(lambda: atlas.objects(columns, where=where), where)


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
    matching vectors are read in one `take` and ranked exactly; broader filters query the index with
    oversampling and keep the candidates the filter allows.
    """
    view = View(atlas)
    mask = None
    if where or allowed is not None:
        objects = view.objects()
        if where:
            mask = rowmap.where_mask(atlas, view.dataset(schema.OBJECTS), objects, where)
        if allowed is not None:
            mask = objects.ids_mask(allowed) if mask is None else mask & objects.ids_mask(allowed)
    return _search(view, vector, space, k, mask, exclude, nprobes, refine_factor)


def _search(
    view: View,
    vector: np.ndarray,
    space: SpaceRef,
    k: int,
    mask: np.ndarray | None,
    exclude: Sequence[str] = (),
    nprobes: int | None = None,
    refine_factor: int | None = None,
) -> pd.DataFrame:
    """`search` over the objects rows in `mask` (all rows when None)."""
    table_name = space_table(space)
    params = view.params(space)
    nprobes = nprobes or params["nprobes"]
    refine_factor = refine_factor or params["refine_factor"]
    vector = _normalise(np.asarray(vector, np.float32))
    metric = params["metric"]
    fetch = k + len(exclude)

    ds = view.dataset(table_name)  # the shared, warm dataset: a freshly opened table costs 5-15 ms a query at 1M
    budget = refine_factor * fetch  # candidates re-ranked exactly, as Lance's refine_factor would
    vectors = view.vector_rows(table_name)

    def ann(limit: int, probes: int) -> np.ndarray:
        """Vector offsets of the index's `limit` nearest by PQ distance, nearest first. Row ids and no refine: taking
        the candidates' object ids (Lance's projection) or vectors (its refine) costs 3-4x the index search at 1M."""
        nearest = {"column": "vector", "q": vector, "k": limit, "nprobes": probes, "metric": metric}
        hits = ds.to_table(columns=["_distance"], with_row_id=True, nearest=nearest).column("_rowid").to_numpy()
        offsets = vectors.offsets_of_row_ids(hits)
        return offsets[offsets >= 0]

    if mask is None:
        found = _reranked(ds, vectors, vector, ann(budget, nprobes), fetch, metric)
    else:
        allowed = int(np.count_nonzero(mask))  # an upper bound on the matching vectors, without gathering them
        found = _Hits.empty()
        if allowed > EXACT_MAX:  # broad: the index, oversampled, then keep what the filter allows
            limit, probes = int(min(budget * len(vectors.object_of) / allowed * 2 + 10, ANN_LIMIT)), nprobes
            while True:
                hits = ann(limit, probes)
                owner = vectors.object_of[hits]
                matched = hits[(owner >= 0) & mask[np.maximum(owner, 0)]]
                if len(matched) >= fetch:
                    found = _reranked(ds, vectors, vector, matched[:budget], fetch, metric)
                    break
                if len(hits) < limit and probes < nprobes * MAX_PROBE_GROWTH:  # the probed partitions ran out
                    probes *= 4
                elif limit < ANN_LIMIT:
                    limit = min(limit * 4, ANN_LIMIT)
                else:
                    break
        if len(found) < fetch:  # selective (or the index came back short): exact over the matching vectors
            rows = vectors.by_object[mask]
            rows = np.sort(rows[rows >= 0])
            if len(rows) > SCAN_MIN:  # a query far from everything the filter allows: one pass beats a take
                found = _reranked(ds, vectors, vector, rowmap.nearest_rows_by_scan(ds, vector, rows, fetch, metric), fetch, metric)
            else:
                ids, mat = rowmap.filtered_vectors(view.atlas, table_name, ds, vectors, rows)
                found = _exact(ids, mat, vector, fetch, metric)
    found = found.at(np.flatnonzero(~np.isin(found.ids, list(exclude)))[:k])
    if metric == "cosine":
        sim = 1.0 - found.dist
    elif len(found):
        sim = _normalise(found.vectors.astype(np.float32)) @ vector
    else:
        sim = np.zeros(0)
    return pd.DataFrame({"object_id": found.ids, "similarity": sim, "distance": found.dist})


@dataclass(frozen=True)
class _Hits:
    """Search results, nearest first: object ids, their vectors and distances under the index metric."""

    ids: np.ndarray  # object (str)
    vectors: np.ndarray  # float32, one row per hit
    dist: np.ndarray  # float64

    @staticmethod
    def empty() -> _Hits:
        """No hits."""
        return _Hits(np.zeros(0, object), np.zeros((0, 0), np.float32), np.zeros(0))

    def __len__(self) -> int:
        return len(self.ids)

    def at(self, positions: np.ndarray) -> _Hits:
        """The hits at `positions`, in that order."""
        return _Hits(self.ids[positions], self.vectors[positions], self.dist[positions])


def _reranked(ds: Any, vectors: rowmap.VectorRows, vector: np.ndarray, rows: np.ndarray, fetch: int, metric: str) -> _Hits:
    """The `fetch` nearest of candidate vector rows, ranked exactly on their stored vectors: one take of the vector
    column, the ids from the row map (taking the string ids too doubles the take: 11 vs 4.5 ms for 220 rows at 1M)."""
    rows = np.unique(rows)
    if not len(rows):
        return _Hits.empty()
    mat = rowmap.vector_matrix(ds.take(rows, columns=["vector"]).column("vector"))
    return _exact(vectors.ids_at(rows), mat, vector, fetch, metric)


def _exact(ids: np.ndarray, mat: np.ndarray, vector: np.ndarray, fetch: int, metric: str) -> _Hits:
    """The `fetch` nearest rows of `mat` (object ids `ids`) to a unit vector under the index metric."""
    if not len(ids):
        return _Hits.empty()
    dist = rowmap.distances(mat, vector, metric)
    top = np.argpartition(dist, fetch)[:fetch] if len(dist) > fetch else np.arange(len(dist))
    top = top[np.lexsort((ids[top].astype(str), dist[top]))]
    return _Hits(ids[top], mat[top], dist[top].astype(np.float64))


def _sky_unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra, np.float64)), np.radians(np.asarray(dec, np.float64))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _drop_same_source(frame: pd.DataFrame, ra0: float, dec0: float, arcsec: float) -> pd.DataFrame:
    """Drop rows within `arcsec` of the query position, and later rows within `arcsec` of a kept row."""
    if frame.empty:
        return frame
    chord = 2.0 * np.sin(np.radians(arcsec / 3600.0) / 2.0)  # separations compared as chords of the unit sphere
    xyz = _sky_unit(frame["ra"].to_numpy(), frame["dec"].to_numpy())
    far = np.linalg.norm(xyz - _sky_unit(np.array(ra0), np.array(dec0)), axis=1) > chord
    kept: list[int] = []
    for i in np.flatnonzero(far):
        if kept and (np.linalg.norm(xyz[kept] - xyz[i], axis=1) <= chord).any():
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
    view: View | None = None,
) -> pd.DataFrame:
    """k nearest neighbours of an object, with similarity and metadata.

    `space` is one space, or a list of aligned spaces for a mixed query (mean of normalised vectors);
    `target_space` (default: `space`, or the first of the list) is searched, so an image space with a spectrum
    `target_space` of the same aligned pair is a cross-modal query. Filters: `where` (SQL over objects
    columns), `z_range`, `survey`, `tag`; `exclude_same_source_arcsec` drops other entries of the same sky source.
    `view`: an `open_view` shared with other calls of the same page run (default: a fresh one).
    A cross-modal query against a space with stored hubness terms is ranked by CSLS (`backend.hubness`): the result
    then has a `csls` column, and its `similarity` (cosine) need not decrease down the list.
    """
    view = view or View(atlas)
    spaces = view.spaces()
    ensure_id_index(atlas, schema.OBJECTS)
    if space is None:
        space = next((n for n, s in spaces.items() if s.modality == "image"), next(iter(spaces)))
    query_spaces = [space_name(s) for s in ([space] if isinstance(space, str | SpaceInfo) else space)]
    target = space_name(target_space) if target_space is not None else query_spaces[0]
    _check_aligned(atlas, spaces, query_spaces, target)
    objects = view.objects()
    me = int(objects.offsets([object_id])[0])
    vector = _query_vector(view, me, object_id, query_spaces)
    mask = _filter_mask(view, objects, where, z_range, survey, tag)
    extra = 3 * k if exclude_same_source_arcsec else 0
    exclude = () if include_self else (object_id,)
    ensure_id_index(atlas, space_table(target))
    cross = len(query_spaces) == 1 and view.ctx.hubness_query.get(target) == query_spaces[0] != target
    found = _search(view, vector, target, max(k + extra, CSLS_CANDIDATES) if cross else k + extra, mask, exclude)
    if cross:  # cross-modal: hubs (near every query of the other modality) demoted by their stored hubness
        table = hubness.hubness_table(target)
        hub = hubness.hubness_for(atlas, target, view.version(table), found["object_id"].to_numpy())
        found = found.assign(csls=hubness.csls(found["similarity"].to_numpy(), hub))
        order = np.lexsort((found["object_id"].to_numpy(str), -found["csls"].to_numpy()))
        found = found.iloc[order[: k + extra]].reset_index(drop=True)
    offsets = objects.offsets(found["object_id"].to_numpy())
    if exclude_same_source_arcsec and me >= 0:  # positions from the row map: only the kept rows are read below
        known = offsets >= 0
        pos = pd.DataFrame({c: np.where(known, v[offsets], np.nan) for c, v in (("ra", objects.ra), ("dec", objects.dec))})
        keep = _drop_same_source(pos, float(objects.ra[me]), float(objects.dec[me]), float(exclude_same_source_arcsec)).index
        found, offsets = found.iloc[keep], offsets[keep]
    found, offsets = found.head(k), offsets[:k]
    cols = list(dict.fromkeys([*META_COLUMNS, *(columns if columns is not None else view.ctx.label_columns)]))
    out = _result_rows(view, objects, found.reset_index(drop=True), offsets, cols)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def _result_rows(view: View, objects: rowmap.ObjectRows, found: pd.DataFrame, offsets: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """`found` with the objects' `columns`: position, redshift and survey from the row map (no read), the rest
    (thumbnail, labels) in one projected take by row offset; at 1M objects each taken column costs ~1-2 ms."""
    known = offsets >= 0
    at = np.maximum(offsets, 0)
    from_map = {"ra": objects.ra, "dec": objects.dec, "redshift": objects.redshift, "survey": objects.survey}
    data: dict[str, Any] = {c: found[c].to_numpy() for c in found.columns}
    taken = [c for c in columns if c in objects.columns and from_map.get(c) is None and c not in data]
    for col in columns:
        values = from_map.get(col)
        if isinstance(values, pd.Categorical):
            labels = np.asarray(values[at], dtype=object)
            labels[~known] = None
            data[col] = labels
        elif values is not None:
            data[col] = np.where(known, values[at], np.nan)
    if taken:
        got = rowmap.take_rows(view.dataset(schema.OBJECTS), offsets[known], taken)
        for col in taken:
            values = np.full(len(at), None, dtype=object)
            values[known] = got[col].to_numpy(dtype=object)
            data[col] = values
    return pd.DataFrame(data)


def _filter_mask(
    view: View, objects: rowmap.ObjectRows, where: str | None, z_range: tuple[float, float] | None,
    survey: str | Sequence[str] | None, tag: str | None,
) -> np.ndarray | None:
    """Objects rows passing every given filter (None when nothing filters): numpy for redshift and survey."""
    parts = []
    if where:
        parts.append(rowmap.where_mask(view.atlas, view.dataset(schema.OBJECTS), objects, where))
    if z_range is not None:
        parts.append(objects.z_mask(*z_range))
    if survey:
        parts.append(objects.survey_mask([survey] if isinstance(survey, str) else list(survey)))
    if tag:
        parts.append(_tag_mask(view, objects, tag))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else np.logical_and.reduce(parts)


def _tag_mask(view: View, objects: rowmap.ObjectRows, tag: str) -> np.ndarray:
    """Objects rows carrying `tag`, kept per (tags version, objects version): folding the tag history of a large
    atlas costs ~20 ms a call."""
    key = (view.atlas.uri, tag, view.version(schema.TAGS) if schema.TAGS in view.names else -1, objects.version)
    mask = _tag_masks.get(key)
    if mask is None:
        mask = objects.ids_mask(tags.tagged_ids(view.atlas, tag) if key[2] >= 0 else [])
        while len(_tag_masks) >= rowmap.MASK_CACHE:
            _tag_masks.pop(next(iter(_tag_masks)), None)
        _tag_masks[key] = mask
    return mask


def directions(atlas: Atlas, object_id: str, view: View | None = None) -> list[Direction]:
    """The searches available for an object: same-space (shape spaces first, then unaligned, then aligned ones),
    cross-modal (both ways) and mixed, per aligned group. `view`: as in `neighbours`."""
    view = view or View(atlas)
    spaces = {info.name: info for info in sorted(view.spaces().values(), key=lambda i: (not i.derived_from, bool(i.aligned_group)))}
    me = int(view.objects().offsets([object_id])[0])
    has = {name: me >= 0 and view.vector_rows(info.table).by_object[me] >= 0 for name, info in spaces.items()}
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
