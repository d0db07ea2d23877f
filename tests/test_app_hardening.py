"""The app renders data as data (no Markdown from ingested values or URLs) and survives empty results."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from backend.store import open_atlas
from tests.page_alone import page_alone
from tests.synthetic import build_synthetic
from tests.test_app_pages import html_tables

BEACON = "![x](http://beacon.example/p.png) **bold** <img src=http://beacon.example/i.png>"


@pytest.fixture(scope="module")
def hostile_atlas(tmp_path_factory: pytest.TempPathFactory) -> str:
    atlas = open_atlas(tmp_path_factory.mktemp("hostile") / "atlas", create=True)
    build_synthetic(atlas, 120)
    atlas.upsert("objects", [{"object_id": "obj00001", "remark": BEACON}])
    return atlas.uri


def markdown_text(at) -> list[str]:
    """The Markdown source of every element that renders Markdown."""
    kinds = (at.markdown, at.caption, at.title, at.header, at.subheader, at.info, at.warning, at.error, at.success)
    return [str(e.value) for kind in kinds for e in kind]


def test_label_values_are_shown_as_data_not_markdown(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", hostile_atlas, object="obj00001")
    assert not at.exception, at.exception
    assert not [t for t in markdown_text(at) if "](http" in t or "**bold**" in t]
    body = next(h.proto.body for h in at.get("html") if "arp-meta" in h.proto.body)  # the metadata table
    assert "<img" not in body, "values are escaped, never HTML"
    cells = {r.find("th").text: r.find("td").text for r in ET.fromstring(body.split("<style>")[0]).iter("tr")}
    assert cells["remark"] == BEACON


def test_object_id_from_the_url_is_escaped(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", hostile_atlas, object="![y](http://beacon.example/q.png)")
    assert not at.exception
    assert at.warning and not [t for t in markdown_text(at) if "](http" in t]


def test_filter_matching_nothing_is_an_empty_grid_with_a_message(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", hostile_atlas, object="obj00002")
    at.text_input(key="conditions").set_value("redshift > 9").run()
    assert not at.exception, at.exception
    assert not at.error
    assert any("No neighbour matches" in str(i.value) for i in at.info)


def test_an_unopenable_atlas_uri_is_a_message_without_server_paths(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", "foo://bucket/atlas")
    assert not at.exception, at.exception
    (error,) = at.error
    assert "Cannot open the atlas" in error.value and ".rs:" not in error.value and ".cargo" not in error.value


@pytest.fixture
def public_server(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Path:
    """The app as if bound to all interfaces, with one configured atlas root."""
    from streamlit import config

    roots = tmp_path / "roots"
    roots.mkdir()
    monkeypatch.setenv("ARP_ATLAS_ROOTS", str(roots))
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    yield roots
    config.set_option("server.address", before)


def test_a_public_server_opens_only_atlases_under_its_roots(hostile_atlas: str, public_server: Path) -> None:
    outside = page_alone("pages/galaxy.py", hostile_atlas, object="obj00002")
    assert not outside.exception and "configured roots" in outside.error[0].value
    inside = public_server / "atlas"
    shutil.copytree(hostile_atlas, inside)
    at = page_alone("pages/galaxy.py", str(inside), object="obj00002")
    assert not at.exception and not at.error and at.title


def test_plot_text_shows_tags_as_text() -> None:
    from pages._shared import plot_text

    assert plot_text("<a href='http://x.example'>obj</a> & co") == "&lt;a href='http://x.example'&gt;obj&lt;/a&gt; &amp; co"


def test_data_page_names_ingest_sources_without_server_paths(hostile_atlas: str, tmp_path: Path) -> None:
    from embeddings.ingest import run_ingest

    source = tmp_path / "deep" / "folder" / "labels.csv"
    source.parent.mkdir(parents=True)
    source.write_text("object_id,quality\nobj00003,good\n")
    run_ingest(source, hostile_atlas, progress=False)
    at = page_alone("pages/data.py", hostile_atlas)
    assert not at.exception, at.exception
    table = next(t for t in html_tables(at) if "skipped" in t.columns)
    assert list(table["source"]) == ["labels.csv"] and list(table["status"]) == ["done"]
    assert str(tmp_path) not in " ".join(str(e.label) for e in at.expander)
