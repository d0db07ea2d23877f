"""Background jobs run detached, report progress, fail loudly, cancel, and survive an app restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

import pytest

from backend import jobs, schema
from backend.jobs import JobStatus
from backend.store import AtlasError, open_atlas, utcnow
from tests import job_kinds  # noqa: F401 - registers the test-* kinds
from tests.synthetic import IMAGE, build_synthetic


def _wait_for(atlas, job_id, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(atlas, job_id)
        if predicate(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting on {job_id}: {jobs.get_job(atlas, job_id)}")


def test_job_runs_in_its_own_session_and_finishes_after_restart(atlas):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 20, "sleep": 0.05})
    running = _wait_for(atlas, job_id, lambda j: j["status"] in ("running", "done"))
    assert running["pid"] and running["log_path"].endswith(".log")
    reopened = open_atlas(atlas.uri)  # as an app restart would
    job = jobs.wait(reopened, job_id, timeout_s=60)
    assert job["status"] == "done" and job["progress"] == pytest.approx(1.0)
    assert job["result"]["sid"] != os.getsid(0)  # detached: a closed tab / rerun cannot kill it
    assert job_id in set(jobs.list_jobs(reopened)["job_id"])


def test_crash_leaves_failed_status_with_the_error(atlas):
    job_id = jobs.submit(atlas, "test-crash")
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "failed"
    assert "flux column has NaNs in row 17" in job["message"]
    assert "ValueError" in open(job["log_path"]).read()


def test_process_that_dies_silently_is_reported_failed(atlas):
    job_id = jobs.submit(atlas, "test-hard-exit")
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "failed" and "died" in job["message"]


def test_cancel_is_polled_by_the_job(atlas):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 400, "sleep": 0.05})
    _wait_for(atlas, job_id, lambda j: j["status"] == "running" and j["progress"] > 0)
    jobs.cancel(atlas, job_id)
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "cancelled"
    assert job["progress"] < 1.0


def test_cancel_terminates_a_job_that_ignores_the_flag(atlas):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 400, "sleep": 0.05, "ignore_cancel": True})
    _wait_for(atlas, job_id, lambda j: j["status"] == "running")
    jobs.cancel(atlas, job_id, grace_s=1.0)
    job = jobs.wait(atlas, job_id, timeout_s=30)
    assert job["status"] == "cancelled"


def test_probe_job_to_completion(atlas):
    build_synthetic(atlas, n=300)
    job_id = jobs.submit(atlas, "probe", {"space": IMAGE.name, "target": "redshift", "method": "linear"})
    job = jobs.wait(atlas, job_id, timeout_s=120)
    assert job["status"] == "done", job["message"]
    assert job["result"]["metrics"]["r2"] > 0.8
    assert atlas.has_table(f"predictions__{job['result']['probe_id']}")


def test_unknown_kind_is_refused(atlas):
    with pytest.raises(AtlasError, match="unknown job kind 'tranin'"):
        jobs.submit(atlas, "tranin", {})
    with pytest.raises(AtlasError, match="unknown job kind"):  # no module:function paths: the registry is the allow-list
        jobs.submit(atlas, "tests.job_kinds:slow", {})


def test_runner_refuses_a_row_of_an_unregistered_kind(atlas):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 1}, detach=False)
    jobs._update(atlas, job_id, kind="os:system", status=JobStatus.QUEUED.value, params='{"command": "touch /tmp/x"}')
    job = jobs.run_job(atlas, job_id)
    assert job["status"] == JobStatus.FAILED and "unknown job kind 'os:system'" in job["message"]


@pytest.fixture
def bystander():
    """An unrelated process of this user (what a recycled pid would belong to)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def test_dead_job_whose_pid_was_reused_fails_and_cancel_leaves_that_process_alone(atlas, bystander):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 400, "sleep": 0.05, "ignore_cancel": True})
    running = _wait_for(atlas, job_id, lambda j: j["status"] == "running")
    os.kill(running["pid"], signal.SIGKILL)
    jobs._update(atlas, job_id, pid=bystander.pid)  # the kernel handed the dead job's pid to another process
    jobs.cancel(atlas, job_id, grace_s=0.5)
    job = jobs.wait(atlas, job_id, timeout_s=30)
    assert job["status"] == JobStatus.FAILED and "died" in job["message"]
    time.sleep(1.5)
    assert bystander.poll() is None, "Cancel signalled a process that is not the job's"


def _foreign_job(atlas, pid: int, beat_age_s: float) -> str:
    """A running job row as a job process on another machine would leave it."""
    job_id = jobs.submit(atlas, "test-slow", {"steps": 1}, detach=False)
    jobs._update(atlas, job_id, status=JobStatus.RUNNING.value, host="another-machine", pid=pid, pid_start=1,
                 heartbeat_at=utcnow() - timedelta(seconds=beat_age_s))
    return job_id


def test_job_on_another_machine_lives_by_its_heartbeat(atlas, bystander):
    fresh = _foreign_job(atlas, bystander.pid, beat_age_s=1)
    assert jobs.get_job(atlas, fresh)["status"] == JobStatus.RUNNING
    jobs.cancel(atlas, fresh, grace_s=0.2)
    time.sleep(1.5)
    assert bystander.poll() is None, "a pid of another machine means nothing here"
    assert atlas.get_row(schema.JOBS, fresh, key="job_id")["cancel_requested"]
    stale = _foreign_job(atlas, bystander.pid, beat_age_s=jobs.HEARTBEAT_TIMEOUT_S + 5)
    job = jobs.get_job(atlas, stale)
    assert job["status"] == JobStatus.FAILED and "no heartbeat" in job["message"]


def test_running_job_writes_heartbeats(atlas):
    job_id = jobs.submit(atlas, "test-slow", {"steps": 160, "sleep": 0.05})
    first = _wait_for(atlas, job_id, lambda j: j["status"] == "running")["heartbeat_at"]
    later = _wait_for(atlas, job_id, lambda j: j["heartbeat_at"] > first, timeout=jobs.HEARTBEAT_S * 4)
    assert later["host"] == jobs.HOST and later["pid_start"]
    assert jobs.wait(atlas, job_id, timeout_s=60)["status"] == JobStatus.DONE


def test_relative_atlas_path_works_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atlas = open_atlas("rel-atlas", create=True)
    job_id = jobs.submit(atlas, "test-slow", {"steps": 2, "sleep": 0.01})
    assert jobs.wait(atlas, job_id, timeout_s=60)["status"] == "done"
