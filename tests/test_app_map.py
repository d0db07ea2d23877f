"""The Map page in AppTest: 'more like these' from a map selection, and the card a map hover shows."""

from __future__ import annotations

import base64
import json

import pytest
from streamlit.testing.v1 import AppTest

from backend.hover import hover_card
from backend.spaces import list_spaces
from backend.store import open_atlas
from pages import _state
from tests.app_atlas import shared_app_atlas
from tests.test_app_pages import app, errors


@pytest.fixture(scope="module")
def app_atlas(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_app_atlas(tmp_path_factory)


def map_cards(at: AppTest, key: str) -> list[dict]:
    """The cards of one Map gallery (pages/_cards.py), none when it is not drawn."""
    return next((json.loads(e.proto.json)["cards"] for e in at.get("bidi_component") if e.key == key), [])


def test_more_like_these_ranks_the_atlas_from_a_map_selection(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    seeds = atlas.objects(["object_id"], limit=5)["object_id"].tolist()
    at = app(app_atlas)
    at.session_state[_state.MAP_SELECTION] = seeds
    at.switch_page("pages/map.py").run()
    assert not errors(at), errors(at)
    at.button(key="map_more_like_these").click().run()
    assert not errors(at), errors(at)
    shown = map_cards(at, "more_like_these_cards")
    opened = [c["id"] for c in shown]
    assert len(opened) == 24 and not set(opened) & set(seeds), "24 other objects, the selection left out"
    scores = [float(c["caption"].rsplit("score ", 1)[1]) for c in shown]
    assert scores == sorted(scores, reverse=True), "best first"
    at.session_state[_state.MAP_CARD_ACTION] = {"kind": "open", "id": opened[0]}  # a card's Open
    at.run()
    assert at.title[0].value == f"Galaxy {opened[0]}"
    at.switch_page("pages/map.py").run()
    assert any(d.proto.label == "Download 24 (votable)" for d in at.get("download_button"))
    # another selection: the old result is not shown as if it were this selection's
    at.session_state[_state.MAP_SELECTION] = seeds[:4]
    at.run()
    assert not map_cards(at, "more_like_these_cards")


def test_a_map_selection_is_tagged_at_once_and_undo_takes_it_back(app_atlas: str, tmp_path) -> None:
    import shutil

    from backend import tags

    shutil.copytree(app_atlas, tmp_path / "atlas")  # a private copy: this test writes tags
    uri = str(tmp_path / "atlas")
    atlas = open_atlas(uri)
    chosen = atlas.objects(["object_id"], limit=6)["object_id"].tolist()
    tags.add_tag(atlas, chosen[0], "merger")  # one carries the tag already
    at = app(uri)
    at.session_state[_state.MAP_SELECTION] = chosen
    at.switch_page("pages/map.py").run()
    at.selectbox(key="selection_tag").set_value("merger").run()
    at.button(key="tag_selection").click().run()
    assert not errors(at), errors(at)
    assert sorted(tags.tagged_ids(atlas, "merger")) == sorted(chosen)
    assert len(tags.history(atlas)) == 6, "one row for each object that lacked the tag, none for the one that had it"
    assert any("Tagged 5 objects merger" in t.value and "1 had it already" in t.value for t in at.toast)
    at.button(key="selection_undo").click().run()
    assert tags.tagged_ids(atlas, "merger") == [chosen[0]], "undo takes back what the bulk tag added, nothing more"


def test_more_like_these_needs_three_selected_objects(app_atlas: str) -> None:
    seeds = open_atlas(app_atlas).objects(["object_id"], limit=2)["object_id"].tolist()
    at = app(app_atlas)
    at.session_state[_state.MAP_SELECTION] = seeds
    at.switch_page("pages/map.py").run()
    assert not errors(at), errors(at)
    assert not [b for b in at.button if b.key == "map_more_like_these"]


def test_hover_card_is_the_stored_thumbnail_with_id_and_redshift(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    row = atlas.objects(["object_id", "thumbnail", "redshift"], limit=3).iloc[2]
    card = hover_card(atlas, row["object_id"])
    assert card["id"] == row["object_id"] and card["text"] == f"{row['object_id']} · z={row['redshift']:.4f}"
    assert card["src"].startswith("data:image/png;base64,")
    assert base64.b64decode(card["src"].split(",", 1)[1]) == bytes(row["thumbnail"])
    assert hover_card(atlas, "no-such-object") is None
    assert list_spaces(atlas), "the atlas the map hovers over has a space"
