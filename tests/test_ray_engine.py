"""The Ray Data engine: same vectors as the local engine, resumable, idempotent (a local 2-CPU Ray instance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backend import schema
from backend.spaces import read_vectors
from embeddings.job import run_embedding
from embeddings.ray_engine import run_embedding_ray
from tests.test_embed_job import synthetic_atlas

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SPACE = "arp-pair-spectrum__spectrum"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, object_store_memory=96 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_vectors_equal_the_local_engines(local_ray: None, tmp_path: Path) -> None:
    local = synthetic_atlas(tmp_path / "local", 240)
    remote = synthetic_atlas(tmp_path / "ray", 240)
    run_embedding(local, "arp-pair-spectrum", workers=0, batch_size=64, progress=False, index=False)
    summary = run_embedding_ray(remote, "arp-pair-spectrum", batch_size=64, workers=1, write_rows=100, progress=False)
    assert summary.status == "done" and summary.embedded == 240 and summary.engine == "ray"
    assert summary.index["type"] == "flat"
    ids_l, vec_l = read_vectors(local, SPACE)
    ids_r, vec_r = read_vectors(remote, SPACE)
    assert len(ids_r) == len(set(ids_r)) == 240
    order = {oid: i for i, oid in enumerate(ids_r)}
    diff = np.abs(vec_l - vec_r[[order[o] for o in ids_l]]).max()
    assert diff <= 1e-5, f"ray and local vectors differ by {diff}"


def test_ray_job_resumes_with_only_the_missing_ids(local_ray: None, tmp_path: Path) -> None:
    atlas = synthetic_atlas(tmp_path / "a", 200)
    first = run_embedding_ray(atlas, "arp-pair-image", limit=70, batch_size=32, workers=1, progress=False, index=False)
    assert first.embedded == 70 and atlas.count(schema.vectors_table("arp-pair-image", "image")) == 70
    rest = run_embedding_ray(atlas, "arp-pair-image", batch_size=32, workers=1, progress=False, index=False)
    assert rest.already_embedded == 70 and rest.embedded == 130
    again = run_embedding_ray(atlas, "arp-pair-image", batch_size=32, workers=1, progress=False, index=False)
    assert again.embedded == 0 and again.already_embedded == 200
    ids, _ = read_vectors(atlas, "arp-pair-image__image")
    assert sorted(ids) == [f"obj{i:05d}" for i in range(200)]  # every object once, none twice
    table = schema.vectors_table("arp-pair-image", "image")
    atlas.table(table).add(atlas.table(table).search().limit(5).to_arrow())  # another writer appends 5 ids again
    assert atlas.count(table) == 205
    cleaned = run_embedding_ray(atlas, "arp-pair-image", batch_size=32, workers=1, progress=False, index=False)
    assert cleaned.embedded == 0 and cleaned.duplicates_dropped == 5
    ids, _ = read_vectors(atlas, "arp-pair-image__image")
    assert sorted(ids) == [f"obj{i:05d}" for i in range(200)]


def test_embed_job_with_the_ray_engine_reports_progress_to_done(local_ray: None, tmp_path: Path) -> None:
    from backend import jobs

    atlas = synthetic_atlas(tmp_path / "a", 60)
    job_id = jobs.submit(atlas, "embed", {"encoder": "arp-pair", "modality": "spectrum", "engine": "ray",
                                          "batch_size": 32, "workers": 1}, detach=False)
    job = jobs.get_job(atlas, job_id)
    assert job["status"] == "done" and job["progress"] == 1.0, job["message"]
    assert job["result"]["engine"] == "ray" and job["result"]["embedded"] == 60
    assert atlas.count(schema.vectors_table("arp-pair-spectrum", "spectrum")) == 60


def test_distributed_ivf_pq_build_serves_queries_with_recall(local_ray: None, tmp_path: Path) -> None:
    from backend.index import measure_recall
    from backend.spaces import SpaceInfo, register_space, write_vectors
    from backend.store import open_atlas
    from embeddings.ray_engine import build_space_index

    atlas = open_atlas(tmp_path / "a", create=True)
    info = SpaceInfo("toy", "image", 32, "rev", "v1")
    register_space(atlas, info)
    rng = np.random.default_rng(0)
    centres, labels = rng.normal(size=(20, 32)), rng.integers(0, 20, 4000)
    write_vectors(atlas, info, [f"o{i:05d}" for i in range(4000)],
                  (centres[labels] + 0.3 * rng.normal(size=(4000, 32))).astype(np.float32))
    built = build_space_index(atlas, info.name, workers=2, distributed_min_rows=0)  # lance-ray even at 4k rows
    assert built["builder"] == "lance-ray" and built["type"] == "IVF_PQ"
    assert [i.index_type for i in atlas.table(info.table).list_indices()] == ["IvfPq"]
    assert measure_recall(atlas, info.name, n_queries=30)["recall_at_k"] >= 0.9
