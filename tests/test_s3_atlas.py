"""Atlases on object storage: the whole demo workflow on a real S3 API (moto server on 127.0.0.1)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import maps, rare, schema, tags
from backend.neighbours import neighbours
from backend.store import open_atlas
from tests.app_atlas import REPO
from tests.s3_server import TEST_SECRET, S3Endpoint, moto_s3, subprocess_env

TAGGER = """
import sys
from backend.store import open_atlas
from backend.tags import add_tag
atlas = open_atlas(sys.argv[1])
for oid in sys.argv[3:]:
    add_tag(atlas, oid, sys.argv[2], author=sys.argv[2])
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


def _taggers(uri: str, jobs: dict[str, list[str]]) -> None:
    """Run one tagging process per entry at the same time; each must exit 0."""
    procs = [subprocess.Popen([sys.executable, "-c", TAGGER, uri, tag, *ids], cwd=REPO, env=subprocess_env(),
                              stderr=subprocess.PIPE, text=True) for tag, ids in jobs.items()]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]


def test_two_concurrent_writers_on_s3_keep_each_others_rows(s3: S3Endpoint) -> None:
    uri = s3.uri(f"race-{uuid.uuid4().hex[:8]}")  # a fresh prefix: a rerun must not see the last attempt's tags
    atlas = open_atlas(uri, create=True)
    for round_ in range(6):  # until the server has refused at least one manifest PUT (a commit race happened)
        jobs = {f"w{round_}{w}": [f"{w}-{round_}-{i}" for i in range(12)] for w in "ab"}
        _taggers(uri, jobs)
        if s3.rejected_commits:
            break
    assert s3.rejected_commits, "the two writers never raced; conditional commits were not exercised"
    history = tags.history(atlas)
    for tag, ids in jobs.items():
        assert sorted(history.loc[history["tag"] == tag, "object_id"]) == sorted(ids)
    assert len(history) == 24 * (round_ + 1)


@pytest.mark.slow
@pytest.mark.browser
def test_demo_workflow_on_s3_from_cli_to_browser(s3: S3Endpoint, tmp_path: Path) -> None:
    uri = s3.uri("demo/sdss")
    env = subprocess_env()
    built = subprocess.run([sys.executable, "-m", "embeddings", "demo", "--atlas", uri, "--n", "40", "--workers", "1",
                            "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "demo: 40 objects" in built.stdout
    again = subprocess.run([sys.executable, "-m", "embeddings", "embed", "--atlas", uri, "--encoder", "arp-pair-image"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["embedded"] == 0 and summary["already_embedded"] == 40  # resumable: nothing is redone
    assert not any(tmp_path.iterdir()), "an s3:// atlas must not leave a local folder behind"

    atlas = open_atlas(uri)
    space = "arp-pair-image__image"
    oid = atlas.objects(["object_id"], limit=1)["object_id"].iloc[0]
    near = neighbours(atlas, oid, space, k=5)
    assert len(near) == 5 and oid not in set(near["object_id"])
    near_z = neighbours(atlas, oid, space, k=5, z_range=(0.0, 0.2))
    assert near_z["redshift"].between(0.0, 0.2).all()
    points = maps.load_map(atlas, space)
    assert points is not None and len(points) == 40 and points[["x", "y", "anomaly"]].notna().all().all()
    assert isinstance(rare.clusters(atlas, space), type(points))
    measured = atlas.objects(["object_id", "morph_gini", "line_d4000n"])  # measured columns reach an S3 atlas
    assert measured["morph_gini"].notna().sum() >= 30 and measured["line_d4000n"].notna().sum() >= 30

    ids = list(atlas.objects(["object_id"])["object_id"])
    _taggers(uri, {"lens": ids[:8], "ring": ids[8:16], "merger": ids[16:24]})
    current = tags.current_tags(atlas)
    assert {t: int(n) for t, n in current.groupby("tag").size().items()} == {"lens": 8, "ring": 8, "merger": 8}

    stored = " ".join(str(v) for v in atlas.table(schema.META).to_pandas()["value"])
    stored += built.stdout + built.stderr + again.stdout + again.stderr
    assert TEST_SECRET not in stored and "arp-test-key" not in stored

    from tests.browser import NEIGHBOUR_IDS_JS, chromium_context, streamlit_server, wait_app_idle

    with streamlit_server(uri, tmp_path.parent / "s3-streamlit.log") as url, chromium_context() as ctx:
        page = ctx.new_page()
        page.goto(f"{url}/galaxy?object={oid}")
        page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=120_000)
        page.wait_for_function(f"() => ({NEIGHBOUR_IDS_JS})().length >= 12", timeout=120_000)  # thumbnails from S3
        assert page.locator("[data-testid='stMain'] [data-testid='stImage'] img").count() >= 1, "the cutout from S3"
        wait_app_idle(page)
        assert page.get_by_text("Tags: lens").count() == (1 if oid in ids[:8] else 0)
