"""The embedding job: atlas objects -> encoder -> `vectors__<encoder>__<modality>`, resumable and idempotent.

Objects already embedded in the space are skipped, the rest stream in id-ordered pages through a
DataLoader (preprocessing in workers), the model runs under autocast on GPU, and vectors are
upserted by object_id from a writer thread, so a rerun after `kill -9` finishes with every object
embedded exactly once. CUDA out-of-memory halves the forward batch and carries on; rows whose
preprocessing raises ValueError or whose vector is not finite are skipped with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from backend.spaces import SpaceInfo, register_space, write_vectors
from backend.store import Atlas, open_atlas
from embeddings.data import PageDataset, page_loader, plan_pages, survey_contexts
from embeddings.encoders.base import Encoder
from embeddings.encoders.registry import find_encoder, get_encoder

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256
WRITE_ROWS = 2048  # vectors per upsert: fewer, larger commits; at most this many recomputed after a kill
PRECISIONS = ("bf16", "fp16", "fp32")
MAX_SKIP_EXAMPLES = 20


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


def run_embedding(
    atlas_uri: str | Atlas,
    encoder_name: str,
    *,
    modality: str | None = None,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH,
    workers: int | None = None,
    precision: str = "bf16",
    limit: int | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
    on_progress: Callable[[float, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    encoder: Encoder | None = None,
    index: bool = True,
    write_rows: int = WRITE_ROWS,
) -> dict:
    """Embed every not-yet-embedded object of the atlas with one encoder; returns a summary dict.

    `encoder` may pass an already built Encoder (the name is then taken from it); `write_rows` vectors go
    into one upsert commit (smaller: less recomputed after a kill, more commits).
    """
    from tqdm.auto import tqdm

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    atlas = atlas_uri if isinstance(atlas_uri, Atlas) else open_atlas(atlas_uri)
    device = resolve_device(device)
    if encoder is None:
        name = find_encoder(encoder_name, modality).name
        encoder = get_encoder(name, **({"checkpoint": checkpoint} if checkpoint else {}))
    encoder.to(device)
    info = SpaceInfo(encoder.name, encoder.modality, int(encoder.dim), encoder.weights_revision,
                     encoder.preprocess_version, encoder.aligned_group)
    register_space(atlas, info)
    done_before = _embedded_ids(atlas, info.table)
    plan = plan_pages(atlas, skip_ids=done_before, limit=limit, page_size=batch_size)
    workers = default_workers(device) if workers is None else workers
    dataset = PageDataset(plan, encoder.input_columns(), encoder.preprocessor(), survey_contexts(atlas))
    loader = page_loader(dataset, workers=workers, pin_memory=device.startswith("cuda"))
    forward = _Forward(encoder, batch_size, device, precision)

    skipped: Counter[str] = Counter()
    examples: list[dict] = []
    written = processed = 0
    pending_ids: list[str] = []
    pending_vecs: list[np.ndarray] = []
    writes: list[Future] = []
    status = "done"
    start = time.perf_counter()
    bar = tqdm(total=plan.total, unit="obj", desc=info.name, disable=not progress, smoothing=0.1)

    def skip(oid: str, reason: str) -> None:
        skipped[reason] += 1
        if len(examples) < MAX_SKIP_EXAMPLES:
            examples.append({"object_id": oid, "reason": reason})

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-writer") as writer:

        def flush() -> None:
            nonlocal written
            if not pending_ids:
                return
            ids, vecs = list(pending_ids), np.concatenate(pending_vecs)
            pending_ids.clear()
            pending_vecs.clear()
            while len(writes) >= 2:  # bound memory: at most two commits in flight
                writes.pop(0).result()
            writes.append(writer.submit(write_vectors, atlas, info, ids, vecs))
            written += len(ids)

        for page in loader:
            if should_cancel is not None and should_cancel():
                status = "cancelled"
                break
            for oid, reason in page["skipped"]:
                skip(oid, reason)
            if page["ids"]:
                vecs = forward(page["inputs"])
                finite = np.isfinite(vecs).all(axis=1)
                for oid in np.asarray(page["ids"], dtype=object)[~finite]:
                    skip(oid, "encoder returned a non-finite vector")
                pending_ids.extend(np.asarray(page["ids"], dtype=object)[finite].tolist())
                pending_vecs.append(vecs[finite])
                if len(pending_ids) >= write_rows:
                    flush()
            n_page = len(page["ids"]) + len(page["skipped"])
            processed += n_page
            bar.update(n_page)
            if on_progress is not None and plan.total:
                on_progress(0.95 * processed / plan.total, f"{processed}/{plan.total} objects embedded")
        flush()
        for fut in writes:
            fut.result()
    bar.close()
    seconds = time.perf_counter() - start

    result = {
        "space": info.name,
        "encoder": info.encoder,
        "modality": info.modality,
        "weights_revision": info.weights_revision,
        "preprocess_version": info.preprocess_version,
        "device": device,
        "status": status,
        "already_embedded": len(done_before),
        "embedded": written,
        "skipped": int(sum(skipped.values())),
        "skipped_reasons": dict(skipped),
        "skipped_examples": examples,
        "vectors_in_space": atlas.count(info.table),
        "seconds": round(seconds, 3),
        "objects_per_s": round(processed / seconds, 2) if seconds > 0 else None,
        "forward_batch": forward.chunk,
        "oom_events": forward.oom_events,
    }
    from backend.index import build_index, index_is_current, measure_recall

    if status == "done" and index and (written or not index_is_current(atlas, info.name)):  # also after a kill -9

        if on_progress is not None:
            on_progress(0.97, "building the ANN index")
        atlas.optimize(info.table)
        result["index"] = build_index(atlas, info.name)
        result["recall"] = measure_recall(atlas, info.name, n_queries=50)
    if on_progress is not None:
        on_progress(1.0, f"{status}: {written} embedded, {result['skipped']} skipped")
    return result


def run_embed_job(atlas: Atlas | str, params: dict | str, ctx) -> dict:
    """Job-runner hook (kind "embed"): params as for `run_embedding` plus "encoder"; ctx reports progress."""
    import json

    params = json.loads(params) if isinstance(params, str) else dict(params or {})
    name = params.pop("encoder", None)
    if not name:
        raise ValueError("embed job needs params['encoder']")
    engine = params.pop("engine", "local")
    allowed = {"modality", "device", "batch_size", "workers", "precision", "limit", "checkpoint"}
    if engine == "ray":
        allowed |= {"ray_address", "gpus_per_worker"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"unknown embed job parameters: {sorted(unknown)}")
    if engine == "ray":
        from embeddings.ray_engine import run_embedding_ray

        params["address"] = params.pop("ray_address", None)
        return run_embedding_ray(atlas, name, progress=False, on_progress=ctx.progress, should_cancel=ctx.cancelled, **params)
    return run_embedding(atlas, name, progress=False, on_progress=ctx.progress, should_cancel=ctx.cancelled, **params)
