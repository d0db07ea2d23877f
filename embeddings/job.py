"""The embedding job: atlas objects -> encoder -> `vectors__<encoder>__<modality>`, resumable and idempotent.

Objects already embedded in the space are skipped, the rest stream in id-ordered pages through a
DataLoader (preprocessing in workers), the model runs under autocast on GPU, and vectors are
upserted by object_id from a writer thread, so a rerun after `kill -9` finishes with every object
embedded exactly once. CUDA out-of-memory halves the forward batch and carries on; rows whose
preprocessing raises ValueError or whose vector is not finite are skipped with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import numpy as np

from backend.jobs import JobStatus
from backend.spaces import SpaceInfo, register_space, space_table, write_vectors
from backend.store import Atlas, open_atlas
from embeddings.data import PageDataset, page_loader, plan_pages, survey_contexts
from embeddings.embed_types import (
    DEFAULT_BATCH,
    PRECISIONS,
    WRITE_ROWS,
    EmbedOptions,
    EmbedSummary,
    JobReporter,
    RayOptions,
    SkipLog,
)
from embeddings.encoders.base import Encoder
from embeddings.encoders.registry import find_encoder, get_encoder

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BATCH", "PRECISIONS", "WRITE_ROWS", "EmbedOptions", "EmbedSummary", "finish_space",
           "resolve_device", "run_embed_job", "run_embedding"]


def resolve_device(device: str = "auto") -> str:
    """`auto` -> cuda when available, else cpu; anything else is checked and passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA GPU")
    return device


def default_workers(device: str) -> int:
    """DataLoader workers: several on GPU, none on CPU (the model needs every core)."""
    return min(8, os.cpu_count() or 1) if device.startswith("cuda") else 0


def _autocast(device: str, precision: str):
    import torch

    if not device.startswith("cuda") or precision == "fp32":
        return nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


class _Forward:
    """Runs encoder.embed in chunks, halving the chunk on CUDA out-of-memory."""

    def __init__(self, encoder: Encoder, chunk: int, device: str, precision: str) -> None:
        self.encoder, self.chunk, self.device, self.precision = encoder, chunk, device, precision
        self.oom_events = 0

    def __call__(self, inputs) -> np.ndarray:
        import torch

        outs, i = [], 0
        while i < len(inputs):
            part = inputs[i : i + self.chunk]
            try:
                with _autocast(self.device, self.precision):
                    out = self.encoder.embed(part)
            except torch.OutOfMemoryError:
                if self.chunk == 1:
                    raise
                self.chunk = max(1, self.chunk // 2)
                self.oom_events += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                log.warning("CUDA out of memory: forward batch halved to %d", self.chunk)
                continue
            outs.append(np.asarray(out, dtype=np.float32))
            i += len(part)
        return np.concatenate(outs) if outs else np.zeros((0, self.encoder.dim), np.float32)


def _embedded_ids(atlas: Atlas, table: str) -> set[str]:
    if not atlas.has_table(table):
        return set()
    return set(atlas.scan_arrow(table, ["object_id"]).column("object_id").to_pylist())


class _VectorWriter:
    """Collects vectors and upserts them from one background thread, at most two commits in flight."""

    def __init__(self, atlas: Atlas, info: SpaceInfo, pool: ThreadPoolExecutor, write_rows: int) -> None:
        self.atlas, self.info, self.pool, self.write_rows = atlas, info, pool, write_rows
        self.ids: list[str] = []
        self.vecs: list[np.ndarray] = []
        self.futures: list[Future] = []
        self.written = 0

    def add(self, ids: list[str], vecs: np.ndarray) -> None:
        """Queue vectors; a full batch of `write_rows` is handed to the writer thread."""
        self.ids.extend(ids)
        self.vecs.append(vecs)
        if len(self.ids) >= self.write_rows:
            self.flush()

    def flush(self) -> None:
        """Hand what is queued to the writer thread (waiting while two commits are in flight)."""
        if not self.ids:
            return
        ids, vecs = list(self.ids), np.concatenate(self.vecs)
        self.ids.clear()
        self.vecs.clear()
        while len(self.futures) >= 2:  # bound memory
            self.futures.pop(0).result()
        self.futures.append(self.pool.submit(write_vectors, self.atlas, self.info, ids, vecs))
        self.written += len(ids)

    def close(self) -> None:
        """Write the rest and wait for every commit."""
        self.flush()
        for fut in self.futures:
            fut.result()


def finish_space(atlas: Atlas, summary: EmbedSummary, options: EmbedOptions, ctx: JobReporter | None,
                 build: Callable[[Atlas, str], dict] | None = None) -> EmbedSummary:
    """After the vectors: build the ANN index when this run wrote vectors or the index is missing or stale
    (a kill -9 before the build), measure its recall, report the end; `build(atlas, space)` builds it."""
    from backend.index import build_index, index_is_current, measure_recall

    space = summary.space
    if summary.status == JobStatus.DONE and options.index and (summary.embedded or not index_is_current(atlas, space)):
        if ctx is not None:
            ctx.progress(0.97, "building the ANN index")
        atlas.optimize(space_table(space))  # compact the many small appended fragments first
        summary.index = (build or build_index)(atlas, space)
        summary.recall = measure_recall(atlas, space, n_queries=50)
    if ctx is not None:
        ctx.progress(1.0, f"{summary.status}: {summary.embedded} embedded, {summary.skipped} skipped")
    return summary


def run_embedding(
    atlas_uri: str | Atlas,
    encoder_name: str,
    options: EmbedOptions | None = None,
    *,
    encoder: Encoder | None = None,
    ctx: JobReporter | None = None,
    **option_values: Any,
) -> EmbedSummary:
    """Embed every not-yet-embedded object of the atlas with one encoder.

    `options` (or their fields as keywords) say how; `encoder` may pass an already built Encoder (the name is then
    taken from it); `ctx` receives progress and is asked whether to stop.
    """
    from tqdm.auto import tqdm

    opts = replace(options or EmbedOptions(), **option_values)
    atlas = atlas_uri if isinstance(atlas_uri, Atlas) else open_atlas(atlas_uri)
    device = resolve_device(opts.device)
    if encoder is None:
        name = find_encoder(encoder_name, opts.modality).name
        encoder = get_encoder(name, **({"checkpoint": opts.checkpoint} if opts.checkpoint else {}))
    encoder.to(device)
    info = encoder.space_info()
    register_space(atlas, info)
    done_before = _embedded_ids(atlas, info.table)
    plan = plan_pages(atlas, skip_ids=done_before, limit=opts.limit, page_size=opts.batch_size)
    workers = default_workers(device) if opts.workers is None else opts.workers
    dataset = PageDataset(plan, encoder.input_columns(), encoder.preprocessor(), survey_contexts(atlas))
    loader = page_loader(dataset, workers=workers, pin_memory=device.startswith("cuda"))
    forward = _Forward(encoder, opts.batch_size, device, opts.precision)
    summary = EmbedSummary.start(info, device, "local", len(done_before))
    skips = SkipLog()
    processed = 0
    start = time.perf_counter()
    bar = tqdm(total=plan.total, unit="obj", desc=info.name, disable=not opts.progress, smoothing=0.1)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-writer") as pool:
        writer = _VectorWriter(atlas, info, pool, opts.write_rows)
        for page in loader:
            if ctx is not None and ctx.cancelled():
                summary.status = JobStatus.CANCELLED
                break
            for oid, reason in page["skipped"]:
                skips.add(oid, reason)
            if page["ids"]:
                vecs = forward(page["inputs"])
                finite = np.isfinite(vecs).all(axis=1)
                ids = np.asarray(page["ids"], dtype=object)
                for oid in ids[~finite]:
                    skips.add(oid, "encoder returned a non-finite vector")
                writer.add(ids[finite].tolist(), vecs[finite])
            n_page = len(page["ids"]) + len(page["skipped"])
            processed += n_page
            bar.update(n_page)
            if ctx is not None and plan.total:
                ctx.progress(0.95 * processed / plan.total, f"{processed}/{plan.total} objects embedded")
        writer.close()
    bar.close()
    summary.embedded, summary.forward_batch, summary.oom_events = writer.written, forward.chunk, forward.oom_events
    summary.record_skips(skips)
    summary.record_time(time.perf_counter() - start, processed)
    summary.vectors_in_space = atlas.count(info.table)
    return finish_space(atlas, summary, opts, ctx)


_JOB_OPTIONS = ("modality", "device", "batch_size", "workers", "precision", "limit", "checkpoint")


def run_embed_job(atlas: Atlas | str, params: dict | str, ctx: JobReporter) -> dict:
    """Job-runner hook (kind "embed"): params "encoder", "engine" (local | ray) and EmbedOptions fields; the
    summary as a dict is the job's result."""
    params = json.loads(params) if isinstance(params, str) else dict(params or {})
    name = params.pop("encoder", None)
    if not name:
        raise ValueError("embed job needs params['encoder']")
    engine = params.pop("engine", "local")
    allowed = set(_JOB_OPTIONS) | ({"ray_address", "gpus_per_worker"} if engine == "ray" else set())
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"unknown embed job parameters: {sorted(unknown)}")
    if engine == "ray":
        from embeddings.ray_engine import run_embedding_ray

        params["address"] = params.pop("ray_address", None)
        return run_embedding_ray(atlas, name, RayOptions(progress=False, **params), ctx=ctx).to_dict()
    return run_embedding(atlas, name, EmbedOptions(progress=False, **params), ctx=ctx).to_dict()
