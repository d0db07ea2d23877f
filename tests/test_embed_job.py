"""The embedding job: every object once, resumable after kill -9, OOM back-off, bad rows skipped with reasons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from backend import schema
from backend.spaces import list_spaces, read_vectors
from backend.spectra import desi_wavelength
from backend.store import open_atlas
from embeddings.builtin.train import save_pair
from embeddings.encoders import arp_preprocess as pp
from embeddings.encoders.builtin import ArpEncoder
from embeddings.encoders.registry import get_encoder
from embeddings.job import run_embed_job, run_embedding
from embeddings.models.arp_pair import ArpPair

REPO = Path(__file__).resolve().parent.parent
IMAGE_TABLE = schema.vectors_table("arp-pair-image", "image")


def synthetic_atlas(path: Path, n: int, *, size: int = 32, spectra: bool = True, seed: int = 0):
    """An atlas of n objects with Gaussian blobs as g,r,z cutouts and noisy continua as spectra."""
    rng = np.random.default_rng(seed)
    atlas = open_atlas(path, create=True)
    atlas.register_survey("synth", bands=["g", "r", "z"], pixel_scale=0.262, image_shape=[3, size, size],
                          wavelength=desi_wavelength() if spectra else None)
    yy, xx = np.mgrid[:size, :size] - size / 2
    rows = []
    for i in range(n):
        width = rng.uniform(1.5, 5.0)
        blob = np.exp(-(xx**2 + yy**2) / (2 * width**2))
        cube = np.stack([blob * f for f in rng.uniform(0.1, 2.0, 3)]) + rng.normal(0, 0.01, (3, size, size))
        row = {"object_id": f"obj{i:05d}", "survey": "synth", "ra": float(i), "dec": 0.0,
               "redshift": float(rng.uniform(0, 0.5)), "split": ("train", "val", "test")[i % 3],
               "image": cube.astype(np.float32).ravel(), "image_shape": [3, size, size]}
        if spectra:
            row["spectrum_flux"] = (1 + rng.normal(0, 0.1, 7781)).astype(np.float32)
            row["spectrum_ivar"] = np.full(7781, 100.0, np.float32)
        rows.append(row)
    atlas.upsert(schema.OBJECTS, rows)
    return atlas


def random_pair_encoder(modality: str) -> ArpEncoder:
    return get_encoder(f"arp-pair-{modality}", random_init=True)


def test_embeds_every_object_once_with_provenance_and_index(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 300)
    result = run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), batch_size=64,
                           workers=0, progress=False, write_rows=100)
    assert result.status == "done" and result.embedded == 300 and result.skipped == 0
    ids, vecs = read_vectors(atlas, "arp-pair-image__image")
    assert sorted(ids) == [f"obj{i:05d}" for i in range(300)]
    assert vecs.shape == (300, 128) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)
    rows = atlas.table(IMAGE_TABLE).search().select(["weights_revision", "preprocess_version"]).limit(5).to_list()
    assert {r["preprocess_version"] for r in rows} == {pp.PREPROCESS_VERSION}
    assert list_spaces(atlas)["arp-pair-image__image"].aligned_group == "arp-pair"
    assert atlas.get_meta("index:arp-pair-image__image")["type"] == "flat"
    assert result.index["rows"] == 300 and result.recall["n_queries"] == 50

    again = run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), progress=False, workers=0)
    assert again.embedded == 0 and again.already_embedded == 300
    assert atlas.count(IMAGE_TABLE) == 300


def test_same_vectors_with_worker_processes_and_in_process(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 120)
    run_embedding(atlas, "arp-pair-spectrum", encoder=random_pair_encoder("spectrum"), workers=0, progress=False,
                  batch_size=50, index=False)
    ids0, v0 = read_vectors(atlas, "arp-pair-spectrum__spectrum")
    atlas2 = synthetic_atlas(tmp_path / "b", 120)
    run_embedding(atlas2, "arp-pair-spectrum", encoder=random_pair_encoder("spectrum"), workers=1, progress=False,
                  batch_size=50, index=False)
    ids1, v1 = read_vectors(atlas2, "arp-pair-spectrum__spectrum", ids0)
    assert ids1 == ids0
    np.testing.assert_allclose(v0, v1, atol=1e-5)


class OomOnBigBatches(ArpEncoder):
    """Test double of a small GPU: raises the CUDA out-of-memory error for batches over 24."""

    def embed(self, batch):
        if len(batch) > 24:
            raise torch.OutOfMemoryError("CUDA out of memory (test double)")
        return super().embed(batch)


def test_out_of_memory_halves_the_batch_and_finishes(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 150, spectra=False)
    enc = OomOnBigBatches("pair_image", ArpPair().eval(), pp.PreprocessStats(), "random-init")
    result = run_embedding(atlas, "x", encoder=enc, batch_size=100, workers=0, progress=False)
    assert result.forward_batch == 12 and result.oom_events == 3
    assert result.embedded == 150 and atlas.count(IMAGE_TABLE) == 150


class NanForHotPixel(ArpEncoder):
    """Test double of a numerically unstable model: NaN vectors for inputs with a saturated corner pixel."""

    def embed(self, batch):
        out = super().embed(batch)
        out[(batch[:, 0].flatten(1).amax(1) > 15).numpy()] = np.nan
        return out


def test_bad_rows_are_skipped_with_reasons_and_the_rest_is_embedded(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 60)
    image = np.zeros(3 * 32 * 32, np.float32)
    image[:] = np.nan
    hot = np.zeros((3, 32, 32), np.float32)
    hot[0, 0, 0] = 1e6
    atlas.upsert(schema.OBJECTS, [
        {"object_id": "bad-nan", "survey": "synth", "image": image, "image_shape": [3, 32, 32], "split": "train"},
        {"object_id": "bad-shape", "survey": "synth", "image": np.zeros(10, np.float32), "image_shape": [3, 32, 32]},
        {"object_id": "bad-vector", "survey": "synth", "image": hot.ravel(), "image_shape": [3, 32, 32]},
    ])
    enc = NanForHotPixel("pair_image", ArpPair().eval(), pp.PreprocessStats(), "random-init")
    result = run_embedding(atlas, "x", encoder=enc, workers=0, progress=False)
    assert result.embedded == 60 and result.skipped == 3
    reasons = {e["object_id"]: e["reason"] for e in result.skipped_examples}
    assert "non-finite pixels" in reasons["bad-nan"]
    assert "image_shape" in reasons["bad-shape"]
    assert "non-finite vector" in reasons["bad-vector"]
    ids, _ = read_vectors(atlas, "arp-pair-image__image")
    assert not {"bad-nan", "bad-shape", "bad-vector"} & set(ids)

    spectra = run_embedding(atlas, "x", encoder=random_pair_encoder("spectrum"), workers=0, progress=False)
    assert spectra.embedded == 60 and spectra.skipped_reasons == {"no spectrum": 3}


class Ctx:
    def __init__(self, cancel_after: int | None = None):
        self.calls: list[tuple[float, str]] = []
        self.cancel_after = cancel_after

    def progress(self, fraction, message=""):
        self.calls.append((fraction, message))

    def cancelled(self):
        return self.cancel_after is not None and len(self.calls) >= self.cancel_after


def test_job_hook_reports_progress_and_cancels_then_resumes(tmp_path, monkeypatch):
    atlas = synthetic_atlas(tmp_path / "a", 200, spectra=False)
    monkeypatch.setattr("embeddings.job.get_encoder", lambda name, **kw: random_pair_encoder("image"))
    ctx = Ctx(cancel_after=2)
    params = {"encoder": "arp-pair-image", "batch_size": 32, "workers": 0}
    result = run_embed_job(atlas, dict(params), ctx)
    assert result["status"] == "cancelled"
    assert 0 < atlas.count(IMAGE_TABLE) < 200
    assert all(0 <= f <= 1 for f, _ in ctx.calls)

    done = Ctx()
    result = run_embed_job(atlas, dict(params), done)
    assert result["status"] == "done" and done.calls[-1][0] == 1.0
    assert atlas.count(IMAGE_TABLE) == 200
    with pytest.raises(ValueError, match="unknown embed job parameters"):
        run_embed_job(atlas, {"encoder": "arp-pair-image", "batchsize": 3}, Ctx())


def test_cli_resumes_after_kill_9_with_every_object_exactly_once(tmp_path):
    n = 1200
    atlas = synthetic_atlas(tmp_path / "a", n, size=24, spectra=False)
    weights = save_pair(ArpPair(), pp.PreprocessStats(), tmp_path / "pair.safetensors")
    cmd = [sys.executable, "-m", "embeddings", "embed", "--atlas", atlas.uri, "--encoder", "arp-pair",
           "--modality", "image", "--checkpoint", str(weights), "--batch-size", "16", "--write-rows", "16",
           "--workers", "0", "--device", "cpu"]
    env = {**os.environ}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while atlas.count(IMAGE_TABLE) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = atlas.count(IMAGE_TABLE)
    assert 0 < partial < n, "the kill must land mid-job for this test to mean anything"

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = atlas.table(IMAGE_TABLE).to_lance().to_table(columns=["object_id"]).column("object_id").to_pylist()
    assert len(ids) == n and len(set(ids)) == n


def test_embed_job_through_the_shared_job_runner(tmp_path):
    from backend.jobs import get_job, submit

    atlas = synthetic_atlas(tmp_path / "a", 90, spectra=False)
    weights = save_pair(ArpPair(), pp.PreprocessStats(), tmp_path / "pair.safetensors")
    job_id = submit(atlas, "embed", {"encoder": "arp-pair-image", "checkpoint": str(weights), "workers": 0,
                                     "batch_size": 32, "device": "cpu"}, detach=False)
    job = get_job(atlas, job_id)
    assert job["status"] == "done" and job["progress"] == 1.0, job["message"]
    assert job["result"]["embedded"] == 90 and atlas.count(IMAGE_TABLE) == 90


def test_rerun_builds_an_index_that_a_kill_left_missing_or_stale(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 60, spectra=False)
    # vectors written, then killed before the index build: the same state as index=False
    run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), workers=0, progress=False, index=False)
    assert atlas.get_meta("index:arp-pair-image__image") is None
    again = run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), workers=0, progress=False)
    assert again.embedded == 0 and again.index["rows"] == 60
    assert atlas.get_meta("index:arp-pair-image__image")["rows"] == 60
    atlas.set_meta("index:arp-pair-image__image", {**(again.index or {}), "rows": 40})  # built before the last writes
    third = run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), workers=0, progress=False)
    assert third.index["rows"] == 60
    fourth = run_embedding(atlas, "arp-pair-image", encoder=random_pair_encoder("image"), workers=0, progress=False)
    assert fourth.index is None  # current index: nothing rebuilt
