"""Background jobs: each job runs in its own detached process; state lives in the atlas `jobs` table.

A Streamlit rerun or a closed tab never kills a job, and jobs survive an app restart, because
`submit` starts `python -m backend.jobs run --atlas URI JOB_ID` in a new session and every bit
of state (status, progress, message, result, pid, log path) is upserted into the `jobs` table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from backend import schema
from backend.store import Atlas, AtlasError, open_atlas, utcnow

# Job kinds map to dotted callables fn(atlas, params, ctx) -> dict, imported only in the job process.
JOB_KINDS: dict[str, str] = {
    "probe": "backend.probes:run_probe_job",
    "embed": "embeddings.job:run_embed_job",
    "ingest": "embeddings.ingest.job:run_ingest_job",
}
FINAL = ("done", "failed", "cancelled")
CANCEL_GRACE_S = 10.0
_PROGRESS_MIN_INTERVAL_S = 0.5


class JobCancelled(Exception):
    """Raised by a job (or `ctx.check_cancelled()`) to stop early; the job ends as `cancelled`."""


class JobContext:
    """What a running job sees: report progress, ask whether it was cancelled."""

    def __init__(self, atlas: Atlas, job_id: str) -> None:
        self.atlas = atlas
        self.job_id = job_id
        self._last_write = 0.0
        self._cancel_seen = False

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress in [0, 1] and a short message (throttled to a write every 0.5 s)."""
        now = time.monotonic()
        if now - self._last_write < _PROGRESS_MIN_INTERVAL_S and fraction < 1.0:
            return
        self._last_write = now
        _update(self.atlas, self.job_id, progress=float(min(max(fraction, 0.0), 1.0)), message=message)

    def cancelled(self) -> bool:
        """Whether the user asked to cancel this job."""
        if not self._cancel_seen:
            self._cancel_seen = _cancel_flag(self.atlas, self.job_id).exists()
        return self._cancel_seen

    def check_cancelled(self) -> None:
        """Raise JobCancelled when the user asked to cancel."""
        if self.cancelled():
            raise JobCancelled(f"job {self.job_id} cancelled")


# ------------------------------------------------------------------ table helpers
def _update(atlas: Atlas, job_id: str, **fields: Any) -> None:
    row = {"job_id": job_id, **fields, "updated_at": utcnow()}
    atlas.upsert(schema.JOBS, [row], key="job_id", create_schema=schema.JOBS_SCHEMA)


def _atlas_dir(atlas: Atlas) -> Path:
    if "://" in atlas.uri:  # object-store atlas: logs stay on this machine
        return Path.cwd() / "logs"
    return Path(atlas.uri).resolve()


def _logs_dir(atlas: Atlas) -> Path:
    path = _atlas_dir(atlas) / "_logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cancel_flag(atlas: Atlas, job_id: str) -> Path:
    return _logs_dir(atlas) / f"{job_id}.cancel"


def _check_kind(kind: str) -> str:
    """A known kind name, or a dotted `package.module:function` path (for plug-in jobs)."""
    target = JOB_KINDS.get(kind, kind)
    module, sep, name = target.partition(":")
    if not sep or not module or not name.isidentifier():
        raise AtlasError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(JOB_KINDS))} (or 'module:function')")
    return target


def _resolve(kind: str) -> Callable[..., dict]:
    module, _, name = _check_kind(kind).partition(":")
    return getattr(importlib.import_module(module), name)


def _log_tail(path: str | None, lines: int = 3) -> str:
    try:
        text = Path(path or "").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a finished child of this process lingers as a zombie until reaped
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


# ------------------------------------------------------------------ public API
def submit(atlas: Atlas, kind: str, params: dict | None = None, *, detach: bool = True) -> str:
    """Queue a job and start it in a detached process; returns the job id."""
    _check_kind(kind)
    params = dict(params or {})
    job_id = f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    log_path = _logs_dir(atlas) / f"{job_id}.log"
    now = utcnow()
    atlas.upsert(
        schema.JOBS,
        [
            {
                "job_id": job_id,
                "kind": kind,
                "params": json.dumps(params, default=str),
                "status": "queued",
                "progress": 0.0,
                "message": "queued",
                "pid": None,
                "log_path": str(log_path),
                "created_at": now,
                "updated_at": now,
                "result": None,
            }
        ],
        key="job_id",
        create_schema=schema.JOBS_SCHEMA,
    )
    if not detach:
        run_job(atlas, job_id)
        return job_id
    repo_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo_root), os.environ.get("PYTHONPATH")) if p)}
    env.setdefault("LANCEDB_LOG", "error")
    uri = atlas.uri if "://" in atlas.uri else str(Path(atlas.uri).resolve())  # the job runs from the repo root
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend.jobs", "run", "--atlas", uri, job_id],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(repo_root),
            env=env,
        )
    _update(atlas, job_id, pid=proc.pid)
    return job_id


def get_job(atlas: Atlas, job_id: str) -> dict:
    """One job as a dict (params and result decoded from JSON); AtlasError when unknown."""
    if not atlas.has_table(schema.JOBS):
        raise AtlasError(f"no job {job_id!r} in {atlas.uri}")
    row = atlas.get_row(schema.JOBS, job_id, key="job_id")
    if row is None:
        raise AtlasError(f"no job {job_id!r} in {atlas.uri}")
    if row["status"] in ("queued", "running") and row.get("pid") and not _alive(int(row["pid"])):
        again = atlas.get_row(schema.JOBS, job_id, key="job_id") or row
        if again["status"] in ("queued", "running"):
            _update(atlas, job_id, status="failed", message=f"job process {row['pid']} died: {_log_tail(row['log_path'])}")
            again = atlas.get_row(schema.JOBS, job_id, key="job_id") or again
        row = again
    row["params"] = json.loads(row["params"] or "{}")
    row["result"] = json.loads(row["result"]) if row.get("result") else None
    return row


def list_jobs(atlas: Atlas, kind: str | None = None) -> pd.DataFrame:
    """All jobs, newest first (columns of the `jobs` table)."""
    cols = [f.name for f in schema.JOBS_SCHEMA]
    if not atlas.has_table(schema.JOBS) or atlas.count(schema.JOBS) == 0:
        return pd.DataFrame(columns=cols)
    frame = atlas.scan(schema.JOBS)
    if kind:
        frame = frame[frame["kind"] == kind]
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True)


def cancel(atlas: Atlas, job_id: str, *, grace_s: float = CANCEL_GRACE_S) -> None:
    """Ask a job to stop (it polls `ctx.cancelled()`); SIGTERM its process if still running after `grace_s`."""
    job = get_job(atlas, job_id)
    if job["status"] in FINAL:
        return
    _cancel_flag(atlas, job_id).touch()
    if job["status"] == "queued" and not job.get("pid"):
        _update(atlas, job_id, status="cancelled", message="cancelled before start")
        return
    pid = job.get("pid")
    if pid and grace_s >= 0:
        threading.Thread(target=_terminate_later, args=(atlas.uri, job_id, int(pid), grace_s), daemon=True).start()


def _terminate_later(uri: str, job_id: str, pid: int, grace_s: float) -> None:
    atlas = open_atlas(uri)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if get_job(atlas, job_id)["status"] in FINAL:
            return
        time.sleep(0.2)
    if get_job(atlas, job_id)["status"] in FINAL:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _update(atlas, job_id, status="cancelled", message=f"terminated after {grace_s:.0f} s grace period")


def wait(atlas: Atlas, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.25) -> dict:
    """Block until a job reaches a final status (done/failed/cancelled) and return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(atlas, job_id)
        if job["status"] in FINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s:.0f} s (log: {job['log_path']})")
        time.sleep(poll_s)


def run_job(atlas: Atlas, job_id: str) -> dict:
    """Run a queued job in this process: status running -> done/failed/cancelled, result stored as JSON."""
    job = get_job(atlas, job_id)
    if job["status"] in FINAL:
        return job
    ctx = JobContext(atlas, job_id)
    if ctx.cancelled():
        _update(atlas, job_id, status="cancelled", message="cancelled before start")
        return get_job(atlas, job_id)
    _update(atlas, job_id, status="running", pid=os.getpid(), message="started")

    def _on_term(signum: int, frame: Any) -> None:
        raise JobCancelled("terminated by signal")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)
    try:
        fn = _resolve(job["kind"])
        result = fn(atlas, job["params"], ctx)
        if ctx.cancelled():
            _update(atlas, job_id, status="cancelled", message="cancelled", result=json.dumps(result or {}, default=str))
        else:
            _update(atlas, job_id, status="done", progress=1.0, message="done", result=json.dumps(result or {}, default=str))
    except JobCancelled as exc:
        _update(atlas, job_id, status="cancelled", message=str(exc))
    except BaseException as exc:  # noqa: BLE001 - any crash must leave a failed row with its error text
        traceback.print_exc()
        _update(atlas, job_id, status="failed", message=f"{type(exc).__name__}: {exc}"[:2000])
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    return get_job(atlas, job_id)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process: `python -m backend.jobs run --atlas URI JOB_ID`."""
    parser = argparse.ArgumentParser(prog="python -m backend.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one queued job")
    run.add_argument("--atlas", required=True)
    run.add_argument("job_id")
    args = parser.parse_args(argv)
    os.environ.setdefault("LANCEDB_LOG", "error")
    job = run_job(open_atlas(args.atlas), args.job_id)
    print(f"job {args.job_id}: {job['status']} - {job['message']}", flush=True)
    return 0 if job["status"] in ("done", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
