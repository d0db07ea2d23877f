"""Background jobs run detached, report progress, fail loudly, cancel, and survive an app restart."""

from __future__ import annotations

import os
import time

import pytest

from backend import jobs
from backend.store import AtlasError, open_atlas
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
    job_id = jobs.submit(atlas, "tests.job_kinds:slow", {"steps": 20, "sleep": 0.05})
    running = _wait_for(atlas, job_id, lambda j: j["status"] in ("running", "done"))
    assert running["pid"] and running["log_path"].endswith(".log")
    reopened = open_atlas(atlas.uri)  # as an app restart would
    job = jobs.wait(reopened, job_id, timeout_s=60)
    assert job["status"] == "done" and job["progress"] == pytest.approx(1.0)
    assert job["result"]["sid"] != os.getsid(0)  # detached: a closed tab / rerun cannot kill it
    assert job_id in set(jobs.list_jobs(reopened)["job_id"])


def test_crash_leaves_failed_status_with_the_error(atlas):
    job_id = jobs.submit(atlas, "tests.job_kinds:crash")
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "failed"
    assert "flux column has NaNs in row 17" in job["message"]
    assert "ValueError" in open(job["log_path"]).read()


def test_process_that_dies_silently_is_reported_failed(atlas):
    job_id = jobs.submit(atlas, "tests.job_kinds:hard_exit")
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "failed" and "died" in job["message"]


def test_cancel_is_polled_by_the_job(atlas):
    job_id = jobs.submit(atlas, "tests.job_kinds:slow", {"steps": 400, "sleep": 0.05})
    _wait_for(atlas, job_id, lambda j: j["status"] == "running" and j["progress"] > 0)
    jobs.cancel(atlas, job_id)
    job = jobs.wait(atlas, job_id, timeout_s=60)
    assert job["status"] == "cancelled"
    assert job["progress"] < 1.0


def test_cancel_terminates_a_job_that_ignores_the_flag(atlas):
    job_id = jobs.submit(atlas, "tests.job_kinds:slow", {"steps": 400, "sleep": 0.05, "ignore_cancel": True})
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


def test_relative_atlas_path_works_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atlas = open_atlas("rel-atlas", create=True)
    job_id = jobs.submit(atlas, "tests.job_kinds:slow", {"steps": 2, "sleep": 0.01})
    assert jobs.wait(atlas, job_id, timeout_s=60)["status"] == "done"
