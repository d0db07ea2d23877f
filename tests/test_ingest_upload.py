"""Upload validation for the app, and the background-job hook."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backend import jobs
from embeddings.ingest import UploadError, validate_upload
from embeddings.ingest.job import run_ingest_job
from embeddings.ingest.samples import write_astroclip_h5, write_sdss_spec


def test_validate_upload_accepts_real_files_and_sanitizes_names(tmp_path):
    spec = write_sdss_spec(tmp_path / "s.fits", ra=1.0, dec=1.0, z=0.1).read_bytes()
    h5 = write_astroclip_h5(tmp_path / "a.h5", 2, groups=1).read_bytes()
    png = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(png, format="PNG")
    csv = pd.DataFrame({"ra": [1.0], "dec": [2.0]}).to_csv(index=False).encode()
    assert validate_upload("../../etc/spec.fits", spec, 10**7) == ("spec.fits", "fits")
    assert validate_upload("C:\\Users\\me\\cube.h5", h5, 10**8) == ("cube.h5", "hdf5")
    assert validate_upload("..hidden.png", png.getvalue(), 10**6) == ("hidden.png", "image")
    assert validate_upload("my targets;rm -rf.csv", csv, 10**6) == ("my_targets_rm_-rf.csv", "csv")


@pytest.mark.parametrize(
    ("name", "data", "limit", "message"),
    [
        ("big.fits", b"SIMPLE  =" + b" " * 100, 50, "over the 50-byte limit"),
        ("evil.exe", b"MZ\x90\x00", 100, "unsupported file type"),
        ("fake.fits", b"\x89HDF\r\n\x1a\n" + b"\x00" * 10, 100, "does not look like a FITS"),
        ("fake.h5", b"SIMPLE  = T", 100, "does not look like a HDF5"),
        ("bin.csv", b"\x00\x01\x02,\x03", 100, "does not look like a CSV"),
        ("empty.csv", b"", 100, "empty"),
    ],
)
def test_validate_upload_refuses_bad_uploads(name, data, limit, message):
    with pytest.raises(UploadError, match=message):
        validate_upload(name, data, limit)


class Ctx:
    def __init__(self, cancel_after: int | None = None):
        self.updates, self.cancel_after, self.asked = [], cancel_after, 0

    def progress(self, fraction: float, message: str) -> None:
        self.updates.append((fraction, message))

    def cancelled(self) -> bool:
        self.asked += 1
        return self.cancel_after is not None and self.asked > self.cancel_after


def test_job_hook_reports_progress_and_result(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "a.h5", 6, groups=1)
    ctx = Ctx()
    result = run_ingest_job(atlas, {"source": str(path), "batch_rows": 2}, ctx)
    assert result["added"] == 6 and result["kind"] == "hdf5-astroclip"
    fractions = [f for f, _ in ctx.updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 3


def test_job_hook_stops_when_cancelled_keeping_complete_rows(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "a.h5", 8, groups=1)
    result = run_ingest_job(atlas, {"source": str(path), "batch_rows": 2}, Ctx(cancel_after=3))
    assert result["cancelled"] and result["added"] == 3 and atlas.count("objects") == 3


def test_ingest_runs_through_the_shared_job_runner(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "a.h5", 4, groups=1)
    job_id = jobs.submit(atlas, "ingest", {"source": str(path)}, detach=False)
    job = jobs.get_job(atlas, job_id)
    assert job["status"] == "done" and job["result"]["added"] == 4
    bad = jobs.submit(atlas, "ingest", {"source": str(tmp_path / "missing.h5")}, detach=False)
    failed = jobs.get_job(atlas, bad)
    assert failed["status"] == "failed" and "missing.h5: no such file or folder" in failed["message"]


def test_uploads_with_the_same_name_do_not_overwrite_each_other(tmp_path):
    from embeddings.ingest.safety import store_upload

    first = store_upload(tmp_path / "uploads", "cat.csv", b"a,b\n1,2\n")
    second = store_upload(tmp_path / "uploads", "cat.csv", b"a,b\n3,4\n")
    assert first != second and first.name.endswith("_cat.csv") and first.parent == second.parent
    assert (first.read_bytes(), second.read_bytes()) == (b"a,b\n1,2\n", b"a,b\n3,4\n")
