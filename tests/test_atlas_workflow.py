"""The notebook workflow end to end on a small demo atlas embedded with the builtin image+spectrum pair:
open -> neighbours (four directions + mixed) -> map -> rare clusters -> tag -> re-rank -> probe job."""

from __future__ import annotations

import numpy as np
import pytest

from backend import active, anomaly, jobs, maps, probes, rare, render, tags
from backend.neighbours import directions, neighbours
from backend.spaces import list_spaces
from backend.store import open_atlas

N = 240
IMAGE, SPECTRUM = "arp-pair-image__image", "arp-pair-spectrum__spectrum"
FAST_MAP = maps.MapParams(pca_components=16, n_neighbors=12, n_epochs=80)


@pytest.fixture(scope="module")
def demo_uri(tmp_path_factory) -> str:
    from embeddings.demo.build import build_demo
    from embeddings.job import run_embedding

    uri = str(tmp_path_factory.mktemp("workflow") / "demo")
    atlas = build_demo(uri, n=N, seed=3, workers=1, progress=False)
    for name in ("arp-pair-image", "arp-pair-spectrum"):
        run_embedding(atlas, name, device="cpu", batch_size=64, workers=0, progress=False)  # committed weights
    return uri


def test_notebook_workflow(demo_uri, tmp_path):
    # open
    atlas = open_atlas(demo_uri)
    spaces = list_spaces(atlas)
    assert {IMAGE, SPECTRUM} <= set(spaces) and spaces[IMAGE].aligned_group == spaces[SPECTRUM].aligned_group
    objs = atlas.objects(["object_id", "morphology", "redshift", "split", "is_rare"]).set_index("object_id")
    oid = objs.index[5]

    # neighbours in all four directions and mixed
    dirs = directions(atlas, oid)
    assert {"image -> image", "spectrum -> spectrum", "image -> spectrum", "spectrum -> image"} <= {d.label for d in dirs}
    assert sum(d.mixed for d in dirs) == 2
    for d in dirs:
        out = neighbours(atlas, oid, list(d.query), target_space=d.target, k=8)
        assert len(out) == 8 and oid not in set(out["object_id"]), d.label
        assert (np.diff(out["similarity"]) <= 1e-5).all()
        assert out[["ra", "dec", "redshift"]].notna().all().all() and out["thumbnail"].map(len).gt(0).all()
    # the aligned pair: an object's own spectrum is among the 10 nearest spectra of its image, mostly (chance: 10/240)
    own = [q in set(neighbours(atlas, q, IMAGE, target_space=SPECTRUM, k=10, include_self=True)["object_id"]) for q in objs.index[:20]]
    assert np.mean(own) >= 0.6
    near = neighbours(atlas, oid, IMAGE, k=6, z_range=(0.02, 0.2), exclude_same_source_arcsec=1.0)
    assert near["redshift"].between(0.02, 0.2).all()

    # map: UMAP of the image space, rendered, sampled and lasso-selected
    frame = maps.compute_map(atlas, IMAGE, FAST_MAP)
    assert len(frame) == N
    picture = render.render(maps.with_objects(atlas, frame, ["morphology"]), "morphology", width=200, height=150)
    assert picture.image.shape == (150, 200, 4) and picture.legend
    (x0, x1), (y0, y1) = picture.x_range, picture.y_range
    everything = render.points_in_polygon(frame, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    assert len(everything) == N and len(render.sample_points(frame, cap=50)) == 50

    # rare clusters and anomaly scores, stored with the map
    table = rare.find_clusters(atlas, IMAGE, min_cluster_size=5)
    assert len(table) >= 2 and table["rank"].tolist() == list(range(1, len(table) + 1))
    assert all(set(ex) <= set(rare.members(atlas, IMAGE, c)) for c, ex in zip(table["cluster"], table["exemplars"], strict=True))
    anomaly.compute_anomalies(atlas, IMAGE)
    top = anomaly.top_anomalies(atlas, IMAGE, n=20)
    assert len(top) == 20 and top["anomaly"].is_monotonic_decreasing
    stored = maps.load_map(atlas, IMAGE)
    assert {"x", "y", "cluster", "cluster_rank", "anomaly", "anomaly_knn", "anomaly_iforest", "anomaly_ecod"} <= set(stored.columns)

    # tag, export, re-rank
    liked, boring = top["object_id"].iloc[3], top["object_id"].iloc[0]
    tags.add_tag(atlas, liked, "merger", note="tidal tail", author="test")
    tags.add_tag(atlas, boring, tags.NOT_INTERESTING, author="test")
    assert tags.tags_of(atlas, liked) == ["merger"]
    exported = tags.export_tagged(atlas, tmp_path / "tagged.fits")
    assert exported.stat().st_size > 0
    ranked = active.rerank(atlas, IMAGE)
    assert ranked["object_id"].iloc[0] == liked and ranked["object_id"].iloc[-1] == boring
    assert len(active.next_to_review(ranked, 10)) == 10

    # probe job in the background, to completion
    job_id = jobs.submit(atlas, "probe", {"space": SPECTRUM, "target": "redshift", "method": "knn"})
    job = jobs.wait(atlas, job_id, timeout_s=180)
    assert job["status"] == "done", job["message"]
    metrics = job["result"]["metrics"]
    assert {"r2", "mae", "outlier_fraction"} <= set(metrics)
    preds = probes.predictions(atlas, job["result"]["probe_id"])
    assert len(preds) == N and set(preds["split"]) == {"train", "test"}
    assert job_id in set(jobs.list_jobs(atlas)["job_id"])
