"""Streaming atlas objects into models: id-ordered pages of rows, preprocessed in DataLoader workers.

Workers open the `objects` Lance dataset themselves (pinned to one version, spawn start method,
since Lance's runtime is not fork-safe) and fetch only the columns the encoder needs by row offset
(a sequential slice when a page is a contiguous run of rows, as in an atlas written in id order).
A preprocessor with a `prepare_page` method (the builtin image tower's) takes a page of one survey as
arrays at once instead of row by row (`prepare_table`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backend import schema
from backend.store import Atlas
from embeddings.encoders.base import SurveyContext

Preprocessor = Callable[[dict, SurveyContext], np.ndarray]


def survey_contexts(atlas: Atlas) -> dict[str, SurveyContext]:
    """SurveyContext (bands, pixel scale, wavelength grid) of every survey recorded in the atlas."""
    out = {}
    for name, info in atlas.surveys().items():
        grid = info.get("wavelength")
        out[name] = SurveyContext(
            bands=tuple(info.get("bands") or ()),
            pixel_scale=info.get("pixel_scale"),
            wavelength=None if grid is None else np.asarray(grid, dtype=np.float64),
        )
    return out


@dataclass(frozen=True)
class PagePlan:
    """What to read: a pinned dataset version and pages of row offsets (ids in ascending order)."""

    uri: str
    version: int
    pages: list[np.ndarray]
    total: int


def plan_pages(
    atlas: Atlas,
    *,
    skip_ids: set[str] | None = None,
    where: str | None = None,
    limit: int | None = None,
    page_size: int = 256,
) -> PagePlan:
    """Offsets of the objects still to process, sorted by object_id, cut into pages."""
    ds = atlas.table(schema.OBJECTS).to_lance()
    ids = ds.to_table(columns=["object_id"], filter=where, with_row_address=False).column("object_id")
    if where is None:
        offsets = np.arange(len(ids))
    else:  # offsets refer to the whole dataset: recompute on the unfiltered column
        all_ids = ds.to_table(columns=["object_id"]).column("object_id")
        offsets = np.flatnonzero(pc.is_in(all_ids, value_set=ids.combine_chunks()).to_numpy(zero_copy_only=False))
        ids = all_ids.take(pa.array(offsets))
    if skip_ids:
        keep = ~pc.is_in(ids, value_set=pa.array(list(skip_ids), pa.string())).to_numpy(zero_copy_only=False)
        ids, offsets = ids.filter(pa.array(keep)), offsets[keep]
    order = np.asarray(pc.sort_indices(ids))
    offsets = offsets[order]
    if limit is not None:
        offsets = offsets[: max(0, limit)]
    pages = [offsets[i : i + page_size] for i in range(0, len(offsets), page_size)]
    return PagePlan(ds.uri, ds.version, pages, len(offsets))


class PageDataset:
    """Map-style dataset whose items are whole pages: {"ids", "inputs" (tensor), "skipped" [(id, reason)]}."""

    def __init__(
        self,
        plan: PagePlan,
        columns: list[str],
        preprocessor: Preprocessor,
        surveys: dict[str, SurveyContext],
    ) -> None:
        self.plan = plan
        self.columns = list(dict.fromkeys(["object_id", "survey", *columns]))
        self.preprocessor = preprocessor
        self.surveys = surveys
        self._ds = None

    def __len__(self) -> int:
        return len(self.plan.pages)

    def _dataset(self):
        if self._ds is None:
            import lance

            from backend.config import storage_options

            self._ds = lance.dataset(self.plan.uri, version=self.plan.version, storage_options=storage_options(self.plan.uri))
        return self._ds

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_ds": None}

    def read_table(self, index: int) -> pa.Table:
        """The raw rows of one page (only the needed columns): one sequential read when the page's offsets are
        a contiguous range (objects written in id order), a take by offset otherwise."""
        page = self.plan.pages[index]
        if len(page) and int(page[-1]) - int(page[0]) + 1 == len(page) and bool((np.diff(page) == 1).all()):
            return self._dataset().to_table(columns=self.columns, offset=int(page[0]), limit=len(page))
        return self._dataset().take(page.tolist(), columns=self.columns)

    def __getitem__(self, index: int) -> dict:
        import torch

        ids: list[str] = []
        inputs: list[Any] = []
        skipped: list[tuple[str, str]] = []
        table = self.read_table(index)
        all_ids = table.column("object_id").to_pylist()
        for oid, x in zip(all_ids, prepare_table(self.preprocessor, table, self.surveys), strict=True):
            if isinstance(x, ValueError):
                skipped.append((oid, str(x)))
                continue
            ids.append(oid)
            inputs.append(x)
        batch = torch.from_numpy(np.stack(inputs)) if inputs else torch.empty(0)
        return {"ids": ids, "inputs": batch, "skipped": skipped}


def prepare_rows(preprocessor: Preprocessor, rows: list[dict], surveys: dict[str, SurveyContext]) -> list[np.ndarray | ValueError]:
    """Model inputs of rows, or the ValueError saying why a row cannot be used (every input of one shape)."""
    default = SurveyContext()
    out: list[np.ndarray | ValueError] = []
    for row in rows:
        try:
            out.append(np.asarray(preprocessor(row, surveys.get(row.get("survey") or "", default))))
        except ValueError as exc:
            out.append(exc)
    shape = next((x.shape for x in out if isinstance(x, np.ndarray)), None)
    return [ValueError(f"preprocessed shape {x.shape} differs from {shape}")
            if isinstance(x, np.ndarray) and x.shape != shape else x for x in out]


def prepare_table(preprocessor: Preprocessor, table: pa.Table, surveys: dict[str, SurveyContext]) -> list[np.ndarray | ValueError]:
    """`prepare_rows` of a table's rows; a preprocessor with a `prepare_page(columns, survey)` method gets the
    page at once (one survey, every list column one length per row, as an n x length array) when it can."""
    page_method = getattr(preprocessor, "prepare_page", None)
    if page_method is not None and "survey" in table.column_names:
        names = table.column("survey").unique().to_pylist()
        columns = None if len(names) != 1 else uniform_columns(
            table, [c for c in table.column_names if c not in ("object_id", "survey")])
        out = None if columns is None else page_method(columns, surveys.get(names[0] or "", SurveyContext()))
        if out is not None:
            return out
    return prepare_rows(preprocessor, table_rows(table), surveys)


def uniform_columns(table: pa.Table, names: list[str]) -> dict[str, np.ndarray] | None:
    """Each named list column as an (n, length) numpy array, or None when a row is null or lengths differ."""
    out = {}
    for name in names:
        arr = table.column(name).combine_chunks()
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) or arr.null_count:
            return None
        offsets = arr.offsets.to_numpy()
        lengths = np.diff(offsets)
        if len(lengths) == 0 or not (lengths == lengths[0]).all() or lengths[0] == 0:
            return None
        values = arr.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
        out[name] = values.reshape(len(arr), int(lengths[0]))
    return out


def table_rows(table: pa.Table) -> list[dict]:
    """A table's rows as dicts, float lists as numpy arrays."""
    cols = {name: _column_values(table.column(name)) for name in table.column_names}
    return [{name: cols[name][i] for name in cols} for i in range(table.num_rows)]


def _column_values(col: pa.ChunkedArray) -> list:
    """Column to per-row Python/numpy values; float lists become numpy arrays without a Python-list detour."""
    arr = col.combine_chunks()
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        if pa.types.is_floating(arr.type.value_type) or pa.types.is_integer(arr.type.value_type):
            offsets = arr.offsets.to_numpy()
            values = arr.values.to_numpy(zero_copy_only=False)
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            return [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(arr))]
    return arr.to_pylist()


def page_loader(dataset: PageDataset, *, workers: int = 0, pin_memory: bool = False, prefetch: int = 2):
    """Pages in order: a DataLoader with `workers` spawned processes (Lance is not fork-safe), or with
    workers=0 one background thread that reads and preprocesses the next pages while the model runs."""
    from torch.utils.data import DataLoader

    if workers == 0:
        return _threaded_pages(dataset, prefetch, pin_memory)
    return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,  # type: ignore[arg-type]
                      pin_memory=pin_memory, multiprocessing_context="spawn", prefetch_factor=prefetch,
                      persistent_workers=False)  # PageDataset is a duck-typed map-style dataset


def _threaded_pages(dataset: PageDataset, prefetch: int, pin_memory: bool) -> Iterator[dict]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-reader") as pool:
        futures = [pool.submit(dataset.__getitem__, i) for i in range(min(prefetch, len(dataset)))]
        for i in range(len(dataset)):
            page = futures.pop(0).result()
            if i + prefetch < len(dataset):
                futures.append(pool.submit(dataset.__getitem__, i + prefetch))
            if pin_memory and page["inputs"].numel():
                page["inputs"] = page["inputs"].pin_memory()
            yield page


def iter_rows(
    atlas: Atlas, columns: list[str], *, where: str | None = None, batch_rows: int = 512
) -> Iterator[dict]:
    """Stream rows of the objects table (only `columns`) as dicts, float lists as numpy arrays."""
    ds = atlas.table(schema.OBJECTS).to_lance()
    for batch in ds.to_batches(columns=list(columns), filter=where, batch_size=batch_rows):
        yield from table_rows(pa.Table.from_batches([batch]))


def measure_rows(
    atlas: Atlas, columns: list[str], where: str, measure: Callable[[dict], dict[str, float]], empty: dict[str, float],
    *, label: str, progress: bool = False, say: Callable[[str], None] | None = None,
) -> Any:
    """A catalogue of measurements (object_id + the keys of `empty`), `measure(row)` of each object matching `where`;
    a row it refuses (ValueError) gets `empty` and a message naming the object."""
    import pandas as pd
    from tqdm.auto import tqdm

    out = []
    for row in tqdm(iter_rows(atlas, ["object_id", *columns], where=where), total=atlas.count(schema.OBJECTS, where),
                    desc=label, disable=not progress):
        try:
            result = measure(row)
        except ValueError as exc:
            if say is not None:
                say(f"{label}: {row['object_id']}: {exc}")
            result = empty
        out.append({"object_id": row["object_id"], **result})
    return pd.DataFrame(out, columns=["object_id", *empty])
