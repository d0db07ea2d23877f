"""Background jobs: each job runs in its own detached process; state lives in the atlas `jobs` table.

A Streamlit rerun or a closed tab never kills a job, and jobs survive an app restart, because `submit` starts
`python -m backend.jobs run --atlas URI JOB_ID` in a new session and every bit of state (status, progress,
message, result, pid, log path) is upserted into the `jobs` table. Only registered kinds run (`JOB_KINDS` is the
allow-list). A running job writes a heartbeat every HEARTBEAT_S; its process is known by host, pid and process
start time, so a reused pid is never mistaken for the job, and a job on another machine is judged by its heartbeat.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from backend import schema
from backend.store import Atlas, AtlasError, open_atlas, utcnow

CANCEL_GRACE_S = 10.0
HEARTBEAT_S = 5.0
HEARTBEAT_TIMEOUT_S = 60.0  # a job whose last heartbeat is older (and whose process cannot be checked) is dead
_PROGRESS_MIN_INTERVAL_S = 0.5
_CANCEL_POLL_S = 1.0
HOST = socket.gethostname()


class JobStatus(StrEnum):
    """Where a job is: queued -> running -> done | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether the job has ended."""
        return self in FINAL


FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobCancelled(Exception):
    """Raised by a job (or `ctx.check_cancelled()`) to stop early; the job ends as `cancelled`."""


class JobContext:
    """What a running job sees: report progress, ask whether it was cancelled."""

    def __init__(self, atlas: Atlas, job_id: str) -> None:
        self.atlas = atlas
        self.job_id = job_id
        self._last_write = 0.0
        self._last_poll = 0.0
        self._cancel_seen = False

    def progress(self, fraction: float, message: str = "") -> None:
        """Record progress in [0, 1] and a short message (throttled to a write every 0.5 s)."""
        now = time.monotonic()
        if now - self._last_write < _PROGRESS_MIN_INTERVAL_S and fraction < 1.0:
            return
        self._last_write = now
        _update(self.atlas, self.job_id, progress=float(min(max(fraction, 0.0), 1.0)), message=message)

    def cancelled(self) -> bool:
        """Whether the user asked to cancel this job (read from the jobs table at most once a second)."""
        if not self._cancel_seen and time.monotonic() - self._last_poll >= _CANCEL_POLL_S:
            self._last_poll = time.monotonic()
            self._cancel_seen = _cancel_requested(self.atlas, self.job_id)
        return self._cancel_seen

    def check_cancelled(self) -> None:
        """Raise JobCancelled when the user asked to cancel."""
        if self.cancelled():
            raise JobCancelled(f"job {self.job_id} cancelled")


JobFn = Callable[[Atlas, dict[str, Any], JobContext], dict[str, Any] | None]


@dataclass(frozen=True)
class JobKind:
    """A kind of job the runner accepts: `load()` imports its function (only in the job process); `precheck(params)`
    raises when the job cannot succeed (missing weights), cheaply, before a process is started or torch imported."""

    name: str
    load: Callable[[], JobFn]
    worker: str = "backend.jobs"  # the module run as `python -m <worker> run ...`; it must register this kind
    precheck: Callable[[dict[str, Any]], None] | None = None


JOB_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> JobKind:
    """Add a kind to the allow-list (a module that registers kinds runs `main()` as their worker)."""
    JOB_KINDS[kind.name] = kind
    return kind


def _probe_job() -> JobFn:
    from backend.probes import run_probe_job

    return run_probe_job


def _embed_job() -> JobFn:
    from embeddings.job import run_embed_job

    return run_embed_job


def _embed_precheck(params: dict[str, Any]) -> None:
    from embeddings.encoders.hub_weights import check_default_weights

    if params.get("encoder"):
        check_default_weights(params["encoder"], params.get("modality"), params.get("checkpoint"))


def _ingest_job() -> JobFn:
    from embeddings.ingest.job import run_ingest_job

    return run_ingest_job


register_job_kind(JobKind("probe", _probe_job))
register_job_kind(JobKind("embed", _embed_job, precheck=_embed_precheck))
register_job_kind(JobKind("ingest", _ingest_job))


def _kind(name: str) -> JobKind:
    if name not in JOB_KINDS:
        raise AtlasError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(JOB_KINDS))}")
    return JOB_KINDS[name]


# ------------------------------------------------------------------ table and process helpers
def _update(atlas: Atlas, job_id: str, **fields: Any) -> None:
    row = {"job_id": job_id, **fields, "updated_at": utcnow()}
    atlas.upsert(schema.JOBS, [row], key="job_id", create_schema=schema.JOBS_SCHEMA)


def _row(atlas: Atlas, job_id: str) -> dict[str, Any]:
    row = atlas.get_row(schema.JOBS, job_id, key="job_id")
    if row is None:
        raise AtlasError(f"no job {job_id!r} in {atlas.uri}")
    return row


def _cancel_requested(atlas: Atlas, job_id: str) -> bool:
    return bool(_row(atlas, job_id).get("cancel_requested"))


def _logs_dir(atlas: Atlas) -> Path:
    base = Path.cwd() / "logs" if "://" in atlas.uri else Path(atlas.uri).resolve()  # object stores: logs stay here
    path = base / "_logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_tail(path: str | None, lines: int = 20) -> str:
    """The last lines of a job's log file ("" when there is none)."""
    try:
        text = Path(path or "").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _log_summary(path: str | None) -> str:
    return " | ".join(log_tail(path, 3).splitlines()) or "no log output"


def process_start(pid: int) -> int | None:
    """The start time of a live, non-zombie process (clock ticks since boot, from /proc), or None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _is_job_process(pid: int, start: int | None) -> bool:
    """Whether `pid` on this machine is still the process that was recorded (same start time)."""
    now = process_start(pid)
    if now is None and not Path("/proc").is_dir():  # no /proc (macOS): existence is all we can tell
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return start is None
    return now is not None and (start is None or now == start)


def _death(row: dict[str, Any]) -> str | None:
    """Why an active job's process is gone, or None while it may still be working."""
    pid, host = row.get("pid"), row.get("host")
    if pid and host in (None, HOST):  # the process is on this machine: ask the kernel
        return None if _is_job_process(int(pid), row.get("pid_start")) else f"job process {pid} died"
    last = row.get("heartbeat_at") or row.get("updated_at")
    if isinstance(last, datetime) and utcnow() - last > timedelta(seconds=HEARTBEAT_TIMEOUT_S):
        return f"job process {pid} on {host} died (no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC)"
    return None


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row["status"] = JobStatus(row["status"])
    row["params"] = json.loads(row["params"] or "{}")
    row["result"] = json.loads(row["result"]) if row.get("result") else None
    return row


# ------------------------------------------------------------------ public API
def submit(atlas: Atlas, kind: str, params: dict | None = None, *, detach: bool = True) -> str:
    """Queue a job of a registered kind and start it in a detached process; returns the job id.

    A job whose kind's precheck fails (e.g. missing weights) is recorded as failed with the reason and never started.
    """
    job_kind = _kind(kind)
    params = dict(params or {})
    job_id = f"{kind}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    log_path = _logs_dir(atlas) / f"{job_id}.log"
    now = utcnow()
    row = {"job_id": job_id, "kind": kind, "params": json.dumps(params, default=str), "status": JobStatus.QUEUED.value,
           "progress": 0.0, "message": "queued", "pid": None, "log_path": str(log_path), "created_at": now,
           "updated_at": now, "result": None, "host": HOST, "pid_start": None, "heartbeat_at": None,
           "cancel_requested": False}
    refused = _precheck(job_kind, params)
    if refused:
        row.update(status=JobStatus.FAILED.value, progress=0.0, message=refused)
    atlas.upsert(schema.JOBS, [row], key="job_id", create_schema=schema.JOBS_SCHEMA)
    if refused:
        return job_id
    if not detach:
        run_job(atlas, job_id)
        return job_id
    repo_root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo_root), os.environ.get("PYTHONPATH")) if p)}
    uri = atlas.uri if "://" in atlas.uri else str(Path(atlas.uri).resolve())  # the job runs from the repo root
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", job_kind.worker, "run", "--atlas", uri, job_id],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=str(repo_root), env=env,
        )
    current = _row(atlas, job_id)  # the job may already have started and recorded itself
    if JobStatus(current["status"]) == JobStatus.QUEUED and not current.get("pid"):
        _update(atlas, job_id, pid=proc.pid, pid_start=process_start(proc.pid), host=HOST)
    return job_id


def _precheck(kind: JobKind, params: dict[str, Any]) -> str | None:
    """Why a job of `kind` with `params` cannot succeed (its error as `Type: message`), or None."""
    if kind.precheck is None:
        return None
    try:
        kind.precheck(params)
    except Exception as exc:  # noqa: BLE001 - the reason is the failed job's message
        return f"{type(exc).__name__}: {exc}"[:2000]
    return None


def get_job(atlas: Atlas, job_id: str) -> dict:
    """One job as a dict (status a JobStatus, params and result decoded); a dead job's process turns it failed."""
    row = _row(atlas, job_id)
    if JobStatus(row["status"]) in ACTIVE and (why := _death(row)):
        again = _row(atlas, job_id)
        if JobStatus(again["status"]) in ACTIVE and _death(again):
            _update(atlas, job_id, status=JobStatus.FAILED.value, message=f"{why}: {_log_summary(row['log_path'])}")
            again = _row(atlas, job_id)
        row = again
    return _decode(row)


def list_jobs(atlas: Atlas, kind: str | None = None) -> pd.DataFrame:
    """All jobs, newest first (columns of the `jobs` table)."""
    cols = [f.name for f in schema.JOBS_SCHEMA]
    if atlas.count(schema.JOBS) == 0:
        return pd.DataFrame(columns=cols)
    frame = atlas.scan(schema.JOBS)
    if kind:
        frame = frame[frame["kind"] == kind]
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True)


def cancel(atlas: Atlas, job_id: str, *, grace_s: float = CANCEL_GRACE_S) -> None:
    """Ask a job to stop (it polls `ctx.cancelled()`); SIGTERM its own process if still running after `grace_s`."""
    job = get_job(atlas, job_id)
    if job["status"].final:
        return
    _update(atlas, job_id, cancel_requested=True)
    if job["status"] == JobStatus.QUEUED and not job.get("pid"):
        _update(atlas, job_id, status=JobStatus.CANCELLED.value, message="cancelled before start")
        return
    if grace_s >= 0:
        threading.Thread(target=_terminate_later, args=(atlas.uri, job_id, grace_s), daemon=True).start()


def _terminate_later(uri: str, job_id: str, grace_s: float) -> None:
    """After the grace period, SIGTERM the job's process, but only when it is this machine's and still the job's."""
    atlas = open_atlas(uri)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if get_job(atlas, job_id)["status"].final:
            return
        time.sleep(0.2)
    job = get_job(atlas, job_id)
    if job["status"].final:
        return
    pid, mine = job.get("pid"), job.get("host") in (None, HOST)
    if not (pid and mine and _is_job_process(int(pid), job.get("pid_start"))):
        return  # another machine's job stops itself on the flag; a pid that is no longer the job's is left alone
    try:
        os.kill(int(pid), signal.SIGTERM)
    except ProcessLookupError:
        pass
    _update(atlas, job_id, status=JobStatus.CANCELLED.value, message=f"terminated after {grace_s:.0f} s grace period")


def wait(atlas: Atlas, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.25) -> dict:
    """Block until a job reaches a final status (done/failed/cancelled) and return it."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = get_job(atlas, job_id)
        if job["status"].final:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s:.0f} s (log: {job['log_path']})")
        time.sleep(poll_s)


def _heartbeat(atlas: Atlas, job_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            _update(atlas, job_id, heartbeat_at=utcnow())
        except Exception as exc:  # noqa: BLE001 - a missed beat is not the job's failure
            print(f"heartbeat of {job_id} not written: {exc}", file=sys.stderr, flush=True)


def run_job(atlas: Atlas, job_id: str) -> dict:
    """Run a queued job in this process: status running -> done/failed/cancelled, result stored as JSON."""
    job = get_job(atlas, job_id)
    if job["status"].final:
        return job
    if _cancel_requested(atlas, job_id):
        _update(atlas, job_id, status=JobStatus.CANCELLED.value, message="cancelled before start")
        return get_job(atlas, job_id)
    pid = os.getpid()
    _update(atlas, job_id, status=JobStatus.RUNNING.value, pid=pid, pid_start=process_start(pid), host=HOST,
            heartbeat_at=utcnow(), message="started")
    ctx = JobContext(atlas, job_id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(atlas, job_id, stop), name="job-heartbeat", daemon=True)

    def _on_term(signum: int, frame: Any) -> None:
        raise JobCancelled("terminated by signal")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_term)
    beat.start()
    try:
        kind = _kind(job["kind"])
        if kind.precheck is not None:
            kind.precheck(job["params"])  # before load(): a job that cannot succeed never imports torch
        result = json.dumps(kind.load()(atlas, job["params"], ctx) or {}, default=str)
        if ctx.cancelled():
            _update(atlas, job_id, status=JobStatus.CANCELLED.value, message="cancelled", result=result)
        else:
            _update(atlas, job_id, status=JobStatus.DONE.value, progress=1.0, message="done", result=result)
    except JobCancelled as exc:
        _update(atlas, job_id, status=JobStatus.CANCELLED.value, message=str(exc))
    except BaseException as exc:  # noqa: BLE001 - any crash must leave a failed row with its error text
        traceback.print_exc()
        _update(atlas, job_id, status=JobStatus.FAILED.value, message=f"{type(exc).__name__}: {exc}"[:2000])
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
    finally:
        stop.set()
        beat.join(timeout=HEARTBEAT_S + 1)
    return get_job(atlas, job_id)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process: `python -m backend.jobs run --atlas URI JOB_ID`."""
    parser = argparse.ArgumentParser(prog="python -m backend.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one queued job")
    run.add_argument("--atlas", required=True)
    run.add_argument("job_id")
    args = parser.parse_args(argv)
    job = run_job(open_atlas(args.atlas), args.job_id)
    print(f"job {args.job_id}: {job['status']} - {job['message']}", flush=True)
    return 0 if job["status"] in (JobStatus.DONE, JobStatus.CANCELLED) else 1


if __name__ == "__main__":  # run through the imported module, so every caller shares one JOB_KINDS registry
    from backend.jobs import main as _main

    sys.exit(_main())
