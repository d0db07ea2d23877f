"""The app renders data as data (no Markdown from ingested values or URLs) and survives empty results."""

from __future__ import annotations

import pytest

from backend.store import open_atlas
from tests.page_alone import page_alone
from tests.synthetic import build_synthetic

BEACON = "![x](http://beacon.example/p.png) **bold**"


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
    shown = [d.value for d in at.dataframe if "value" in d.value.columns]
    assert shown and BEACON in set(shown[0]["value"])


def test_object_id_from_the_url_is_escaped(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", hostile_atlas, object="![y](http://beacon.example/q.png)")
    assert not at.exception
    assert at.warning and not [t for t in markdown_text(at) if "](http" in t]


def test_filter_matching_nothing_is_an_empty_grid_with_a_message(hostile_atlas: str) -> None:
    at = page_alone("pages/galaxy.py", hostile_atlas, object="obj00002")
    at.expander[0]  # the Filters expander exists
    at.text_input(key="conditions").set_value("redshift > 9").run()
    assert not at.exception, at.exception
    assert not at.error
    assert any("No neighbour matches" in str(i.value) for i in at.info)
