"""The Ray Data engine for embedding jobs (`python -m embeddings embed --engine ray`): the same job as
embeddings/job.py, spread over a Ray cluster (or a local Ray instance).

Ray Data reads the `objects` Lance dataset with only the columns the encoder needs, preprocessing runs
as CPU tasks, an actor pool loads the encoder once per actor (GPU when `gpus_per_worker` > 0), write
tasks turn vectors into Lance fragments (lance-ray's `write_fragment`), and the driver commits them
with `LanceDataset.commit(Append)` every few fragments. Only ids without a vector are read, so a
re-run after a crash embeds what is missing and never duplicates a row; appends are not key-checked, so each
run ends by deleting any id that a concurrent writer also stored (keeping the newest row).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from backend import schema
from backend.config import storage_options
from backend.jobs import JobStatus
from backend.spaces import SpaceInfo, register_space, vectors_arrow
from backend.store import Atlas, open_atlas, utcnow, where_in, with_retry
from backend.store.keys import drop_duplicates
from embeddings.embed_types import EmbedSummary, JobReporter, RayOptions, SkipLog
from embeddings.encoders.base import Encoder

log = logging.getLogger(__name__)

READ_BLOCK_BATCHES = 4  # forward batches per read block
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2  # a local Ray instance shares the box with the app: keep its store small
FILTER_IN_LIST_MAX = 50_000  # more missing ids than this are filtered inside the read tasks instead
DISTRIBUTED_INDEX_MIN_ROWS = 1_000_000  # spaces this large get their IVF_PQ index built by lance-ray's workers


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Connect to a Ray cluster at `address`, or start a small local instance (no dashboard) when none runs."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
        return
    ray.init(num_cpus=num_cpus or os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE_BYTES,
             include_dashboard=False, log_to_driver=False)


def _preprocess(batch: pa.Table, preprocessor: Callable, surveys: dict, keep: frozenset | None) -> dict:
    """CPU task: rows -> model inputs; a row that cannot be used keeps its id with an error and a zero input."""
    from embeddings.data import prepare_table

    if keep is not None:
        batch = batch.filter(pa.array([oid in keep for oid in batch.column("object_id").to_pylist()], pa.bool_()))
    ids = batch.column("object_id").to_pylist()
    prepared = prepare_table(preprocessor, batch, surveys)
    errors = [str(x) if isinstance(x, ValueError) else "" for x in prepared]
    inputs = [None if isinstance(x, ValueError) else np.asarray(x, np.float32) for x in prepared]
    shape = next((x.shape for x in inputs if x is not None), None)
    shape = shape or (1,)
    stacked = np.zeros((len(ids), *shape), np.float32)
    for i, x in enumerate(inputs):
        if x is not None:
            stacked[i] = x
    return {"object_id": np.asarray(ids, dtype=object), "x": stacked, "error": np.asarray(errors, dtype=object)}


class _EmbedActor:
    """Actor: builds the encoder once, then embeds the valid rows of each batch (OOM halves the chunk)."""

    def __init__(self, name: str, kwargs: dict, device: str, precision: str, chunk: int, threads: int | None = None) -> None:
        import torch

        from embeddings.encoders.registry import get_encoder
        from embeddings.job import _Forward

        if threads:  # Ray pins a 1-CPU actor's torch to one thread (OMP_NUM_THREADS); a local CPU run gives it the box
            torch.set_num_threads(threads)

        encoder = get_encoder(name, **kwargs)
        encoder.to(device)
        self.dim = int(encoder.dim)
        self.forward = _Forward(encoder, chunk, device, precision)

    def __call__(self, batch: dict) -> dict:
        import torch

        errors = np.asarray(batch["error"], dtype=object)
        ok = np.flatnonzero(errors == "")
        vectors = np.zeros((len(errors), self.dim), np.float32)
        if len(ok):
            vectors[ok] = self.forward(torch.from_numpy(np.ascontiguousarray(batch["x"][ok], np.float32)))
        bad = ~np.isfinite(vectors).all(axis=1) & (errors == "")
        errors[bad] = "encoder returned a non-finite vector"
        return {"object_id": batch["object_id"], "vector": vectors, "error": errors}


def _write_fragments(batch: dict, uri: str, info: dict, options: dict | None) -> dict:
    """Write task: the valid vectors of a batch as Lance fragment files (committed later by the driver)."""
    from lance_ray.fragment import write_fragment

    errors = np.asarray(batch["error"], dtype=object)
    ok = errors == ""
    ids = [str(o) for o in np.asarray(batch["object_id"], dtype=object)[ok]]
    vectors = np.ascontiguousarray(batch["vector"][ok], np.float32)
    fragments = []
    if ids:
        table = vectors_arrow(SpaceInfo(**info), ids, vectors)
        fragments = [frag for frag, _ in write_fragment([table], uri, schema=table.schema, storage_options=options)]
    skipped = [(str(o), str(e)) for o, e in zip(np.asarray(batch["object_id"], dtype=object)[~ok], errors[~ok], strict=True)]
    return {"fragments": np.asarray([pickle.dumps(fragments)], dtype=object), "written": np.asarray([len(ids)]),
            "skipped": np.asarray([pickle.dumps(skipped)], dtype=object)}


def _missing_ids(atlas: Atlas, table: str, limit: int | None) -> tuple[list[str], int, int]:
    """Object ids without a vector in `table` (sorted, at most `limit`), how many had one, and the objects count."""
    import pyarrow.compute as pc

    ids = atlas.table(schema.OBJECTS).to_lance().to_table(columns=["object_id"]).column("object_id")
    done = 0
    if atlas.has_table(table):
        have = atlas.table(table).to_lance().to_table(columns=["object_id"]).column("object_id")
        done = len(have)
        ids = ids.filter(pc.invert(pc.is_in(ids, value_set=have.combine_chunks())))
    todo = sorted(ids.to_pylist())
    return (todo if limit is None else todo[: max(0, limit)]), done, atlas.count(schema.OBJECTS)


def _vectors_dataset_uri(atlas: Atlas, info: SpaceInfo) -> str:
    if not atlas.has_table(info.table):
        with_retry(lambda: atlas.db.create_table(info.table, schema=schema.vectors_schema(info.dim), exist_ok=True), info.table)
    return atlas.table(info.table).to_lance().uri


def _commit(uri: str, fragments: list, options: dict | None) -> None:
    import lance

    def go() -> None:
        current = lance.dataset(uri, storage_options=options)
        lance.LanceDataset.commit(uri, lance.LanceOperation.Append(fragments), read_version=current.version,
                                  storage_options=options)

    with_retry(go, uri)


def run_embedding_ray(
    atlas_uri: str | Atlas,
    encoder_name: str,
    options: RayOptions | None = None,
    *,
    ctx: JobReporter | None = None,
    **option_values: Any,
) -> EmbedSummary:
    """Embed every not-yet-embedded object with Ray Data; returns the same summary as the local engine.

    `options.workers` actors run the encoder (default: one per GPU-share or per two CPUs); `options.encoder_kwargs`
    go to the registry factory in each actor (e.g. `random_init=True` in tests).
    """
    from embeddings.encoders.registry import find_encoder, get_encoder
    from embeddings.job import finish_space

    opts = replace(options or RayOptions(), **option_values)
    atlas = atlas_uri if isinstance(atlas_uri, Atlas) else open_atlas(atlas_uri)
    name = find_encoder(encoder_name, opts.modality).name
    kwargs = {**opts.encoder_kwargs, **({"checkpoint": opts.checkpoint} if opts.checkpoint else {})}
    encoder = get_encoder(name, **kwargs)  # on the driver only for provenance, columns and the preprocessor
    info = encoder.space_info()
    register_space(atlas, info)
    todo, done_before, n_objects = _missing_ids(atlas, info.table, opts.limit)
    actor_device = ("cuda" if opts.gpus_per_worker > 0 else "cpu") if opts.device == "auto" else opts.device
    summary = EmbedSummary.start(info, actor_device, "ray", done_before)
    start = time.perf_counter()
    n_actors = opts.workers or 2
    if todo:
        n_actors = _embed_missing(atlas, encoder, kwargs, info, todo, n_objects, opts, summary, ctx)
    if atlas.has_table(info.table):  # appended fragments are not key-checked: a concurrent job may have written an id too
        summary.duplicates_dropped = drop_duplicates(atlas.table(info.table), info.table, "object_id")
    summary.record_time(time.perf_counter() - start, summary.embedded + summary.skipped)
    summary.vectors_in_space = atlas.count(info.table)
    return finish_space(atlas, summary, opts, ctx, build=lambda a, space: build_space_index(a, space, workers=n_actors))


def _embed_missing(atlas: Atlas, encoder: Encoder, kwargs: dict, info: SpaceInfo, todo: list[str], n_objects: int,
                   opts: RayOptions, summary: EmbedSummary, ctx: JobReporter | None) -> int:
    """Run the Ray Data pipeline over the objects in `todo`, filling `summary`; returns the number of actors."""
    import ray

    from embeddings.data import survey_contexts

    ensure_ray(opts.address)
    options = storage_options(atlas.uri)
    vectors_uri = _vectors_dataset_uri(atlas, info)
    objects_uri = atlas.table(schema.OBJECTS).to_lance().uri
    columns = list(dict.fromkeys(["object_id", "survey", *encoder.input_columns()]))
    everything = len(todo) == n_objects
    filt = None if everything or len(todo) > FILTER_IN_LIST_MAX else where_in("object_id", todo)
    keep = None if everything or filt else frozenset(todo)
    cpus = float(ray.cluster_resources().get("CPU", 2))
    gpus = opts.gpus_per_worker
    n_actors = opts.workers or (max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus else max(1, int(cpus) // 2))
    # CPU actors must leave a CPU to the read, preprocess and write tasks, or the pipeline starves
    actor_cpus = 0 if gpus else min(1.0, max(0.25, (cpus - 1) / n_actors))
    # on a local instance the CPU actors share the machine's cores for the forward (the read and preprocessing
    # tasks interleave with it, as in the local engine); on a cluster Ray's per-actor CPU share stands
    local_threads = max(1, int(cpus) // n_actors) if not gpus and not opts.address else None
    # blocks of a few forward batches: Ray's default of at least 200 read blocks cuts a small job into blocks of a
    # few rows each (600 objects: 504 blocks), and the per-block scheduling then costs more than the model
    blocks = max(1, math.ceil(len(todo) / (READ_BLOCK_BATCHES * opts.batch_size)))
    ds = ray.data.read_lance(objects_uri, columns=columns, filter=filt, storage_options=options, override_num_blocks=blocks)
    ds = ds.map_batches(_preprocess, batch_format="pyarrow", batch_size=opts.batch_size, num_cpus=1,
                        fn_kwargs={"preprocessor": encoder.preprocessor(), "surveys": survey_contexts(atlas), "keep": keep})
    ds = ds.map_batches(_EmbedActor, batch_format="numpy", batch_size=opts.batch_size, concurrency=n_actors,
                        num_gpus=gpus or None, num_cpus=actor_cpus,
                        fn_constructor_kwargs={"name": encoder.name, "kwargs": kwargs, "device": summary.device,
                                               "precision": opts.precision, "chunk": opts.batch_size,
                                               "threads": local_threads})
    ds = ds.map_batches(_write_fragments, batch_format="numpy", batch_size=opts.write_rows, num_cpus=0.5,
                        fn_kwargs={"uri": vectors_uri, "info": {**info.__dict__}, "options": options})
    _drive(ds, vectors_uri, options, len(todo), summary, opts.progress, ctx)
    return n_actors


def _drive(ds: Any, uri: str, options: dict | None, total: int, summary: EmbedSummary, progress: bool,
           ctx: JobReporter | None) -> None:
    """Consume the write tasks' outputs on the driver, committing their fragments as they arrive."""
    from tqdm.auto import tqdm

    skips = SkipLog()
    processed = 0
    bar = tqdm(total=total, unit="obj", desc=f"{summary.space} (ray)", disable=not progress)
    for row in ds.iter_rows():
        fragments = pickle.loads(row["fragments"])
        if fragments:
            _commit(uri, fragments, options)
        skipped = pickle.loads(row["skipped"])
        for oid, reason in skipped:
            skips.add(oid, reason)
        n = int(row["written"]) + len(skipped)
        summary.embedded += int(row["written"])
        processed += n
        bar.update(n)
        if ctx is not None:
            ctx.progress(0.95 * processed / max(total, 1), f"{processed}/{total} objects embedded (ray)")
            if ctx.cancelled():
                summary.status = JobStatus.CANCELLED
                break
    bar.close()
    summary.record_skips(skips)


def build_space_index(atlas: Atlas, space: str, *, workers: int = 2,
                      distributed_min_rows: int = DISTRIBUTED_INDEX_MIN_ROWS) -> dict:
    """The space's ANN index: lance-ray's distributed IVF_PQ build at `distributed_min_rows` and above,
    the single-process build (backend.index) below."""
    from backend.index import build_index, index_plan, meta_key

    tbl = atlas.table(schema.vectors_table(*schema.parse_space(space)))
    rows = tbl.count_rows()
    if rows < distributed_min_rows:
        return build_index(atlas, space)
    import lance_ray

    plan = index_plan(rows, tbl.schema.field("vector").type.list_size, flat_threshold=0)
    started = time.perf_counter()
    lance_ray.create_index(tbl.to_lance().uri, "vector", "IVF_PQ", name="vector_idx", replace=True,
                           num_workers=workers, storage_options=storage_options(atlas.uri), metric=plan["metric"],
                           num_partitions=plan["num_partitions"], num_sub_vectors=plan["num_sub_vectors"],
                           sample_rate=max(4, min(256, rows // max(plan["num_partitions"], 256))))
    entry = {**plan, "rows": rows, "build_s": round(time.perf_counter() - started, 3), "recall_at_10": None,
             "query_p50_ms": None, "built_at": utcnow().isoformat(), "builder": "lance-ray"}
    atlas.set_meta(meta_key(space), entry)
    return entry
