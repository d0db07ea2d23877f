"""Hook for the background job runner: an ingest job is `run_ingest` with progress and cancellation wired in."""

from __future__ import annotations

from typing import Any

from backend.store import Atlas

from .run import run_ingest


def run_ingest_job(atlas: Atlas, params: dict, ctx: Any) -> dict:
    """Run an ingest job; params: source (required), kind, survey and any run_ingest option."""
    opts = dict(params)
    source = opts.pop("source")
    report = run_ingest(
        source, atlas.uri, progress=False, on_progress=ctx.progress, cancelled=ctx.cancelled, **opts
    )
    ctx.progress(1.0, f"{report.added} added, {report.updated} updated, {report.skipped} skipped")
    return report.to_dict()
