"""The astronomer's workbench in AppTest: find, links out, downloads, map legend/filter/highlight, probe results,
rare-page votes and tabs, home guide and counts, data sources, upload errors."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from backend import jobs, probes, tags
from backend.spaces import list_spaces
from backend.store import open_atlas
from pages import _state
from tests.app_atlas import shared_app_atlas
from tests.test_app_pages import app, click_card, errors, html_tables, rare_cards, svg_images


@pytest.fixture(scope="module")
def app_atlas(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_app_atlas(tmp_path_factory)


@pytest.fixture
def atlas_copy(app_atlas: str, tmp_path: Path) -> str:
    shutil.copytree(app_atlas, tmp_path / "atlas")
    return str(tmp_path / "atlas")


def plain(text: str) -> str:
    """Text as the user reads it (Markdown escapes removed)."""
    return re.sub(r"\\(.)", r"\1", text)


def chart_json(at, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def map_json(at) -> dict:
    """What the Map page sends its map component: background, legend or colour bar, hover sample, star."""
    return next(json.loads(e.proto.json) for e in at.get("bidi_component") if e.proto.component_name == "arp_map_canvas")


def test_find_box_opens_by_name_like_id_and_lists_a_cone(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    row = atlas.objects(["object_id", "ra", "dec"], limit=4).iloc[3]
    number = int(row["object_id"].split("-")[1])
    at = app(app_atlas)
    at.text_input(key="find_query").input(f"SDSS {number}")
    at.button(key="FormSubmitter:find_form-Find").click().run()
    assert not errors(at), errors(at)
    assert plain(at.title[0].value) == f"Galaxy {row['object_id']}"
    # a position 2" north of the object, in sexagesimal: listed with its separation
    from backend.links import sexagesimal_text

    at.text_input(key="find_query").input(sexagesimal_text(row["ra"], row["dec"] + 2 / 3600))
    at.button(key="FormSubmitter:find_form-Find").click().run()
    assert not errors(at), errors(at)
    listed = [b for b in at.button if (b.key or "").startswith("find_open_")]
    assert listed and listed[0].key == f"find_open_{row['object_id']}" and '2.0"' in plain(listed[0].label)
    assert any("within 10\"" in plain(c.value) for c in at.caption)


def test_galaxy_shows_precise_coordinates_links_and_downloads(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    row = atlas.objects(["object_id", "ra", "dec"], limit=3).iloc[2]
    at = app(app_atlas, object=row["object_id"])
    at.switch_page("pages/galaxy.py").run()
    assert not errors(at), errors(at)
    copyable = json.loads(next(c for c in at.get("bidi_component") if c.proto.component_name == "arp_copy_text").proto.json)
    assert f"{row['ra']:.6f} {row['dec']:+.6f}" in copyable["values"]  # 1e-6 degree, not 6 significant figures
    assert any(c.count(":") == 4 for c in copyable["values"]), "sexagesimal coordinates"
    table = ET.fromstring(next(h.proto.body for h in at.get("html") if "arp-meta" in h.proto.body).split("<style>")[0])
    meta = {r.find("th").text: r.find("td").text for r in table.iter("tr")}
    assert meta["ra"] == f"{row['ra']:.6f}" and meta["dec"] == f"{row['dec']:.6f}", "the metadata keeps 1e-6 degree"
    links = dict(copyable["links"])  # drawn beside the coordinates, as links that open a new tab
    assert list(links) == ["Legacy Survey viewer", "SDSS SkyServer", "NED", "SIMBAD"]
    assert f"ra={row['ra']:.6f}" in links["Legacy Survey viewer"]
    downloads = [d.proto.label for d in at.get("download_button")]
    assert {"Cutout (FITS)", "Spectrum (FITS)"} <= set(downloads)
    assert any(d.startswith("Download 12") for d in downloads), "the neighbours can be taken away"
    assert any('"/px' in plain(c.value) for c in at.caption), "the cutout states its pixel scale"
    assert not at.get("plotly_chart"), "the spectrum is a static SVG until the user asks to zoom"
    spectrum = ET.fromstring(svg_images(at)[0])
    texts = [t.text or "" for t in spectrum.iter("{http://www.w3.org/2000/svg}text")]
    assert "observed wavelength (Å)" in texts and any("erg" in t for t in texts)
    labels = [t.get("transform") for t in spectrum.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "line"]
    assert len({t.split(",")[1].split(")")[0] for t in labels}) > 1, "close line labels are staggered"
    before = svg_images(at)[0]
    at.slider(key="smooth").set_value(25).run()  # in the Smoothing popover: a wider window redraws the spectrum
    assert svg_images(at)[0] != before
    at.toggle(key="rest_frame").set_value(True).run()
    assert "rest-frame wavelength (Å)" in svg_images(at)[0]
    at.toggle(key="spectrum_interactive").set_value(True).run()  # zoom: the same spectrum in Plotly
    spec = chart_json(at)
    assert "rest-frame wavelength" in json.dumps(spec["layout"]["xaxis"]) and "erg" in json.dumps(spec["layout"]["yaxis"])
    assert len({a["y"] for a in spec["layout"]["annotations"]}) > 1, "close line labels are staggered"
    assert not errors(at), errors(at)


def test_galaxy_point_at_without_a_hub_says_so(app_atlas: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    oid = open_atlas(app_atlas).objects(["object_id"], limit=1)["object_id"].iloc[0]
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    at.button(key="samp_point").click().run()
    assert any("No SAMP hub is running" in plain(w.value) for w in at.warning)
    at.button(key="neighbours_export_samp").click().run()
    assert any("start TOPCAT or Aladin" in plain(w.value) for w in at.warning)


def test_map_categorical_legend_filter_and_current_galaxy(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    oid = atlas.objects(["object_id"], limit=6)["object_id"].iloc[5]
    at = app(app_atlas)
    at.session_state[_state.OBJECT_ID] = oid
    at.session_state[_state.MAP_COLOUR] = "rare_class"
    at.switch_page("pages/map.py").run()
    assert not errors(at), errors(at)
    spec = map_json(at)
    names = [label for label, _ in spec["legend"]]
    assert names[-1] == "(none)" and len(names) >= 3, names  # rare classes labelled, the common empty value last (grey)
    assert spec["current"]["id"] == oid and spec["colourbar"] is None
    assert any("all drawn and all clickable" in plain(c.value) for c in at.caption)
    lo, hi = at.slider(key="map_z_range").value
    at.slider(key="map_z_range").set_value((lo, (lo + hi) / 2)).run()
    assert not errors(at), errors(at)
    z = atlas.objects(["redshift"])["redshift"]
    expected = int(((z >= lo) & (z <= (lo + hi) / 2)).sum())
    assert any(f"{expected:,} objects match" in plain(c.value) for c in at.caption)
    assert len(map_json(at)["points"]["ids"].split("\n")) == expected
    at.text_input(key="map_condition").input("no_such_column = 1").run()
    assert any("is not valid" in plain(e.value) for e in at.error) and not at.exception


def test_cluster_is_coloured_as_categories(app_atlas: str) -> None:
    at = app(app_atlas)
    at.session_state[_state.MAP_COLOUR] = "cluster"
    at.switch_page("pages/map.py").run()
    assert not errors(at), errors(at)
    spec = map_json(at)
    assert "noise" in [label for label, _ in spec["legend"]] and spec["colourbar"] is None


def test_map_selection_gallery_labels_redshift_and_exports(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    ids = atlas.objects(["object_id"], limit=5)["object_id"].tolist()
    at = app(app_atlas)
    at.session_state[_state.MAP_SELECTION] = ids
    at.switch_page("pages/map.py").run()
    assert not errors(at), errors(at)
    cards = next(json.loads(e.proto.json)["cards"] for e in at.get("bidi_component") if e.key == "selection_cards")
    captions = [c["caption"] for c in cards]
    assert [c["id"] for c in cards] == ids, "the gallery shows the selected objects"
    assert all(" · z=" in c for c in captions) and not any(" r=" in c for c in captions)
    assert any(d.proto.label == "Download 5 (votable)" for d in at.get("download_button"))


def test_probe_results_follow_the_probe_that_just_finished(atlas_copy: str) -> None:
    atlas = open_atlas(atlas_copy)
    space = sorted(list_spaces(atlas))[0]
    first = probes.train_probe(atlas, space, "redshift", "linear")["probe_id"]
    at = app(atlas_copy)
    at.switch_page("pages/probes.py").run()
    at.selectbox(key="probe_pick").set_value(first).run()  # the user looked at the first probe
    job_id = jobs.submit(atlas, "probe", {"space": space, "target": "redshift", "method": "knn"}, detach=False)
    second = jobs.get_job(atlas, job_id)["result"]["probe_id"]
    at.session_state[_state.PROBE_JOB] = job_id  # as if launched from the page's form
    at.run()
    assert not errors(at), errors(at)
    assert at.selectbox(key="probe_pick").value == second
    assert any("knn probe" in plain(c.value) for c in at.caption)
    at.button(key="colour_map").click().run()
    assert at.session_state[_state.MAP_COLOUR] == f"probe:{second}"


def test_rare_tagged_tab_lists_the_tagged_objects_as_a_light_table(atlas_copy: str) -> None:
    atlas = open_atlas(atlas_copy)
    oids = atlas.objects(["object_id"], limit=3)["object_id"].tolist()
    for oid in oids:
        tags.add_tag(atlas, oid, "tidal-stream")
    at = app(atlas_copy)
    at.switch_page("pages/rare.py").run()
    at.session_state["rare_tab"] = "Tagged"
    at.run()
    assert not errors(at), errors(at)
    assert not at.dataframe, "a short tag list is an HTML table (the data grid costs the tab ~0.5 s)"
    listed = next(h.proto.body for h in at.get("html") if all(oid in h.proto.body for oid in oids))
    assert "tidal-stream" in listed
    at.selectbox(key="export_tag").set_value("tidal-stream").run()
    assert any(d.proto.label.startswith("Export 3 rows") for d in at.get("download_button"))


def test_rare_votes_show_on_the_card_and_keep_the_tab(atlas_copy: str) -> None:
    at = app(atlas_copy)
    at.switch_page("pages/rare.py").run()
    at.session_state["rare_tab"] = "Anomalies"
    at.run()
    oid = next(c["id"] for c in rare_cards(at, "anom") if c["vote"] is None)  # the copied atlas may have some votes

    def shown_vote() -> str | None:
        return next(c["vote"] for c in rare_cards(at, "anom") if c["id"] == oid)

    click_card(at, "up", oid)
    assert not errors(at), errors(at)
    assert at.session_state["rare_tab"] == "Anomalies" and rare_cards(at, "anom"), "still on the Anomalies tab"
    assert shown_vote() == "up", "the card shows its vote"
    assert tags.INTERESTING in tags.tags_of(open_atlas(atlas_copy), oid)
    assert any(oid in t.proto.body and "interesting" in t.proto.body for t in at.toast)
    click_card(at, "down", oid)  # the other vote replaces it
    assert tags.tags_of(open_atlas(atlas_copy), oid) == [tags.NOT_INTERESTING] and shown_vote() == "down"
    click_card(at, "down", oid)  # the same vote again takes it back
    assert tags.tags_of(open_atlas(atlas_copy), oid) == [] and shown_vote() is None
    at.button(key="anom_undo").click().run()  # the take-back is undoable
    assert tags.tags_of(open_atlas(atlas_copy), oid) == [tags.NOT_INTERESTING] and shown_vote() == "down"
    click_card(at, "tag", oid)  # the tag button shows the full tag bar for that object, above the Anomalies tab
    assert not errors(at), errors(at)
    assert any(plain(m.value) == f"Tagging **{oid}**" for m in at.markdown)
    assert at.button(key="rare_tag_ring").label == "ring" and at.session_state["rare_tab"] == "Anomalies"
    click_card(at, "open", oid)
    assert not errors(at), errors(at)
    assert plain(at.title[0].value) == f"Galaxy {oid}"


def test_home_counts_tagged_objects_and_guides(atlas_copy: str) -> None:
    atlas = open_atlas(atlas_copy)
    before = set(tags.current_tags(atlas)["object_id"])  # the shared atlas may carry other tests' tags
    ids = [o for o in atlas.objects(["object_id"])["object_id"] if o not in before][:3]
    tags.add_tag(atlas, ids, "ring")
    tags.add_tag(atlas, ids[0], "merger")
    tags.remove_tag(atlas, ids[2], "ring")
    at = app(atlas_copy)
    assert not errors(at), errors(at)
    assert {m.label: m.value for m in at.metric}["Tagged objects"] == f"{len(before) + 2:,}"  # 5 rows, 2 objects
    assert any("**Map**" in m.value for m in at.markdown)
    at.button(key="guide_random").click().run()
    assert at.title[0].value.startswith("Galaxy ")
    at = app(atlas_copy)
    at.button(key="guide_rare").click().run()
    assert at.title[0].value == "Rare objects"


def test_data_sources_are_files_and_upload_errors_name_the_file_once(atlas_copy: str) -> None:
    at = app(atlas_copy)
    at.switch_page("pages/data.py").run()
    assert not at.dataframe, "short tables are drawn as HTML (a data grid costs a new tab ~0.5 s)"
    sources = [t for t in html_tables(at) if "source" in t.columns][0]
    assert len(sources) == 1 and sources["objects"].iloc[0] == f"{open_atlas(atlas_copy).count('objects'):,}"
    at.file_uploader(key="upload").upload("cube.fits", b"not a FITS file", "application/fits").run()
    message = [plain(e.value) for e in at.error if "cube" in e.value][0]
    assert message.count("cube.fits") == 1, message


def test_tag_buttons_have_keyboard_shortcuts_and_neighbour_spectra_overlay_the_query(app_atlas: str) -> None:
    oid = open_atlas(app_atlas).objects(["object_id"], limit=1)["object_id"].iloc[0]
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    keys = {b.key.removeprefix("galaxy_tag_"): b.proto.shortcut for b in at.button if (b.key or "").startswith("galaxy_tag_")}
    assert {k: v.lower() for k, v in keys.items()} == {"ring": "g", "merger": "m", "lens": "l", "artefact": "a",
                                                       "interesting": "i", "boring": "b"}
    at.get("segmented_control")[0].set_value("image -> spectrum").run()
    overlay = svg_images(at)[1]
    assert overlay.count('class="neighbour"') == 12 and overlay.count('class="query"') == 12, "this galaxy under each"
    assert f"{oid} (this galaxy)" in overlay
    at.toggle(key="spectrum_interactive").set_value(True).run()
    names = [t.get("name", "") for t in chart_json(at, 1)["data"]]
    assert any(n.endswith("(this galaxy)") for n in names) and len(names) > 12
