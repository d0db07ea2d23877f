"""Page logic with streamlit.testing AppTest on a small atlas: every page renders, deep links, tags, missing atlas."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from backend import active, anomaly, rare, selection, tags
from backend.spaces import list_spaces
from backend.store import open_atlas
from pages import _state
from pages._shared import md_escape
from tests.app_atlas import REPO, shared_app_atlas
from tests.page_alone import page_alone

PAGES = ["pages/map.py", "pages/galaxy.py", "pages/rare.py", "pages/probes.py", "pages/jobs.py", "pages/data.py"]


@pytest.fixture(scope="module")
def app_atlas(tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_app_atlas(tmp_path_factory)


def app(uri: str, **query: str) -> AppTest:
    """The app pointed at an atlas, with optional query parameters, run once on the home page."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    at.session_state[_state.ATLAS_URI] = uri
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]


SVG = "{http://www.w3.org/2000/svg}"


def svg_images(at: AppTest) -> list[str]:
    """The SVG images of the page (st.image sends an SVG inline, as a data URI)."""
    urls = [img.url for element in at.get("image") for img in element.proto.imgs]
    prefix = "data:image/svg+xml;base64,"
    return [base64.b64decode(u.removeprefix(prefix)).decode() for u in urls if u.startswith(prefix)]


def html_tables(at: AppTest) -> list[pd.DataFrame]:
    """The tables drawn as HTML (pages/_shared.html_table) as the user reads them: every cell's text."""
    tables = []
    for element in at.get("html"):
        if "arp-table" not in element.proto.body:
            continue
        table = ET.fromstring(element.proto.body.split("<style>")[0])  # well-formed: every value is escaped
        columns = [th.text or "" for th in table.iterfind("thead/tr/th")]
        rows = [[cell.text or "" for cell in tr] for tr in table.iterfind("tbody/tr")]
        tables.append(pd.DataFrame(rows, columns=columns or None))
    return tables


def test_home_shows_counts_and_spaces(app_atlas: str) -> None:
    at = app(app_atlas)
    assert not errors(at)
    metrics = {m.label: m.value for m in at.metric}
    atlas = open_atlas(app_atlas)
    assert metrics["Objects"] == f"{atlas.count('objects'):,}"
    assert int(metrics["Embedding spaces"]) >= 2
    from backend.spaces import list_spaces

    assert not at.dataframe, "Home draws its tables as HTML (a data grid costs a new tab ~0.5 s)"
    tables = html_tables(at)
    spaces = [t for t in tables if "space" in t.columns]
    assert spaces and set(list_spaces(atlas)) == set(spaces[0]["space"])
    assert set(spaces[0]["vectors"]) == {f"{atlas.count(info.table):,}" for info in list_spaces(atlas).values()}
    per_survey = [t for t in tables if list(t.columns) == ["survey", "objects"]]
    counted = atlas.objects(["survey"])["survey"].value_counts()
    assert per_survey and dict(zip(per_survey[0]["survey"], per_survey[0]["objects"], strict=True)) == {
        s: f"{n:,}" for s, n in counted.items()}


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders(app_atlas: str, page: str) -> None:
    at = app(app_atlas)
    at.switch_page(page).run()
    assert not errors(at), errors(at)
    assert at.title, f"{page} rendered no title"


def test_missing_atlas_says_how_to_build_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    at = app(missing)
    assert not at.exception
    assert any("Cannot open the atlas" in e.value for e in at.error)
    assert any(f"python -m embeddings demo --atlas {missing}" in c.value for c in at.code)


def neighbour_cards(at: AppTest) -> list[dict]:
    """The Galaxy page's neighbour cards (pages/_cards.py): id, caption and thumbnail data URI of each."""
    return next(json.loads(e.proto.json)["cards"] for e in at.get("bidi_component") if e.key == "neighbour_cards")


def test_galaxy_deep_link_shows_that_object_and_neighbours(app_atlas: str) -> None:
    oid = open_atlas(app_atlas).objects(["object_id"], limit=5)["object_id"].iloc[3]
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    assert not errors(at), errors(at)
    assert at.title[0].value == f"Galaxy {oid}"
    shown = neighbour_cards(at)
    assert len(shown) == 12 and all(c["src"].startswith("data:image/png;base64,") for c in shown)
    assert all(c["id"] != oid for c in shown), "the galaxy is not its own neighbour"
    # Opening a neighbour moves the page (and the shareable URL) to it, in one run.
    target = shown[0]["id"]
    at.session_state[_state.NEIGHBOUR_ACTION] = {"kind": "open", "id": target}
    at.run()
    assert at.title[0].value == f"Galaxy {target}"
    assert target not in [c["id"] for c in neighbour_cards(at)], "its own neighbours, without itself"
    assert at.query_params["object"] == [target] or at.query_params["object"] == target


def test_a_page_runs_alone_without_the_app_frame(app_atlas: str) -> None:
    oid = open_atlas(app_atlas).objects(["object_id"], limit=3)["object_id"].iloc[2]
    at = page_alone("pages/galaxy.py", app_atlas, object=oid)
    assert not errors(at), errors(at)
    assert at.title[0].value == f"Galaxy {oid}"
    assert _state.ATLAS_URI not in [t.key for t in at.text_input], "alone, there is no atlas picker (app.py's frame)"


def test_cross_modal_direction_shows_neighbour_spectra(app_atlas: str) -> None:
    oid = open_atlas(app_atlas).objects(["object_id"], limit=1)["object_id"].iloc[0]
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    control = at.get("segmented_control")[0]
    kinds = {o.split(" · ")[0] for o in control.options}  # two spaces of one kind are told apart by a suffix
    assert {"image → image", "spectrum → spectrum", "image → spectrum", "spectrum → image"} <= kinds
    control.set_value("image -> spectrum").run()
    assert not errors(at), errors(at)
    assert any("against " in c.value and "spectrum" in c.value.split("against")[1] for c in at.caption)
    svgs = [i for e in at.get("image") for i in e.proto.imgs if i.url.startswith("data:image/svg+xml")]
    assert len(svgs) == 2  # the galaxy's spectrum and the neighbours' spectra


def test_tag_button_writes_a_tag_row_and_undo_removes_it(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    oid = atlas.objects(["object_id"], limit=10)["object_id"].iloc[7]
    before = len(tags.history(atlas, oid))
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    at.button(key="galaxy_tag_merger").click().run()
    assert not errors(at), errors(at)
    assert "merger" in tags.tags_of(atlas, oid)
    assert len(tags.history(atlas, oid)) == before + 1
    assert any(m.value.startswith("**Tags:**") and "merger" in m.value for m in at.markdown)
    at.button(key="galaxy_undo").click().run()
    assert "merger" not in tags.tags_of(atlas, oid)
    assert len(tags.history(atlas, oid)) == before + 2  # the removal is a row too


def test_a_free_tag_is_written_and_a_bad_name_is_refused_with_the_reason(atlas_copy: str) -> None:
    atlas = open_atlas(atlas_copy)
    oid = atlas.objects(["object_id"], limit=3)["object_id"].iloc[2]
    at = app(atlas_copy, object=oid)
    at.switch_page("pages/galaxy.py").run()
    at.text_input(key="galaxy_free").input("  tidal stream ").run()
    at.button(key="galaxy_free_add").click().run()
    assert not errors(at), errors(at)
    assert tags.tags_of(atlas, oid) == ["tidal stream"]
    at.text_input(key="galaxy_free").input("x" * 70).run()
    at.button(key="galaxy_free_add").click().run()
    assert any("at most 64 characters" in e and "this one has 70" in e for e in errors(at)), errors(at)
    assert len(tags.history(atlas, oid)) == 1, "the refused name wrote nothing"
    at.button(key="galaxy_undo").click().run()
    assert tags.tags_of(atlas, oid) == []


@pytest.fixture
def atlas_copy(app_atlas: str, tmp_path: Path) -> str:
    """A private copy of the small atlas, for tests that add objects, probes or jobs."""
    import shutil

    shutil.copytree(app_atlas, tmp_path / "atlas")
    return str(tmp_path / "atlas")


def test_upload_is_validated_saved_under_uploads_and_ingested(atlas_copy: str) -> None:
    from backend import jobs

    atlas = open_atlas(atlas_copy)
    ids = atlas.objects(["object_id"], limit=3)["object_id"].tolist()
    csv = "object_id,ra,dec,visual_class\n" + "".join(f"{oid},,,{cls}\n" for oid, cls in zip(ids, "abc", strict=True))
    at = app(atlas_copy)
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="upload").upload("../../etc/evil name.csv", csv.encode(), "text/csv").run()
    assert not errors(at), errors(at)
    at.button(key="ingest_go").click().run()
    assert not errors(at), errors(at)
    saved = list((Path(atlas_copy) / "uploads").iterdir())
    assert len(saved) == 1 and "/" not in saved[0].name and ".." not in saved[0].name and " " not in saved[0].name
    job = jobs.wait(atlas, at.session_state[_state.INGEST_JOB], timeout_s=300)
    assert job["status"] == "done", job["message"]
    labels = atlas.get_objects(ids, ["visual_class"])
    assert labels["visual_class"].tolist() == ["a", "b", "c"]


def test_upload_with_wrong_content_is_refused(atlas_copy: str) -> None:
    at = app(atlas_copy)
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="upload").upload("cube.fits", b"this is not a FITS file at all", "application/fits").run()
    assert any("cube.fits" in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "ingest_go"]
    assert not (Path(atlas_copy) / "uploads").exists()


def rare_cards(at: AppTest, gallery: str) -> list[dict]:
    """The cards one Rare gallery's component draws (pages/_cards.py): id, caption, thumbnail data URI and vote."""
    return next(json.loads(e.proto.json)["cards"] for e in at.get("bidi_component") if e.key == f"cards_{gallery}")


def click_card(at: AppTest, kind: str, object_id: str) -> AppTest:
    """A click on a card's button as its gallery's callback hands it to the page (the click itself, inside the
    component, is Chromium's: tests/test_browser_workbench.py)."""
    at.session_state[_state.RARE_ACTION] = {"kind": kind, "id": object_id}
    return at.run()


def test_rare_page_votes_rerank_and_export(atlas_copy: str) -> None:
    at = app(atlas_copy)
    at.switch_page("pages/rare.py").run()
    assert not errors(at), errors(at)
    galleries = [e.key for e in at.get("bidi_component") if e.proto.component_name == "arp_cards"]
    assert galleries and all(k.startswith("cards_cl") for k in galleries), "only the open tab (clusters) is drawn"
    assert not [e for e in at.selectbox if e.key == "export_cluster"], "the export reads nothing while it is closed"
    at.session_state["cluster_export_open"] = True  # the user opens the "Take a cluster away" popover
    at.run()
    picker = at.selectbox(key="export_cluster")  # one cluster's members
    for cluster in picker.options[:2]:
        picker.set_value(int(cluster.split("cluster ")[-1])).run()
        members = selection.by_cluster(open_atlas(atlas_copy), rare.COMBINED, int(cluster.split("cluster ")[-1]))
        label = next(d.proto.label for d in at.get("download_button") if d.key == "cluster_export_download")
        assert label.startswith(f"Download {len(members):,} ") and len(members) > 0
    at.session_state["rare_tab"] = "Anomalies"
    at.run()
    shown = rare_cards(at, "anom")
    assert len(shown) == 24, "the anomaly gallery shows the top 24"
    assert all(c["src"].startswith("data:image/png;base64,") for c in shown), "each card with its thumbnail"
    voted = next(c["id"] for c in shown if c["vote"] is None)  # a card not voted yet (the atlas is shared)
    click_card(at, "up", voted)
    assert "interesting" in tags.tags_of(open_atlas(atlas_copy), voted)
    assert next(c["vote"] for c in rare_cards(at, "anom") if c["id"] == voted) == "up", "the card shows its vote"
    at.button(key="rerank").click().run()
    assert not errors(at), errors(at)
    assert any("Re-ranked by your tags" in c.value for c in at.caption)
    reviewed = [c["id"] for c in rare_cards(at, "anom")]
    assert voted not in reviewed, "the re-ranked list offers objects not labelled yet"
    assert at.get("download_button"), "tagged objects can be exported"
    curve = active.found_curve(open_atlas(atlas_copy))
    assert curve["found"].iloc[-1] >= 1 and curve["found"].is_monotonic_increasing
    shown = f"Interesting found vs inspected: {int(curve['found'].iloc[-1])} of {len(curve)}"
    assert any(shown in c.value for c in at.caption), "the found curve counts the vote"
    assert not at.get("arrow_vega_lite_chart"), "the curve is an SVG image, not a Vega-Lite chart"
    drawn = ET.fromstring(next(svg for svg in svg_images(at) if "Interesting found" in svg))
    assert drawn.findtext(f"{SVG}title") == f"Interesting found: {int(curve['found'].iloc[-1])} of {len(curve)} inspected"
    path = drawn.find(f".//{SVG}path[@class='curve']").get("d")
    assert len(path.removeprefix("M").split()) == 2 * len(curve), "one point per labelled object"


def test_rare_page_more_like_these_from_a_tag(atlas_copy: str) -> None:
    atlas = open_atlas(atlas_copy)
    seeds = atlas.objects(["object_id"], limit=3)["object_id"].tolist()
    tags.add_tag(atlas, seeds, "merger")
    at = app(atlas_copy)
    at.switch_page("pages/rare.py").run()
    at.session_state["rare_tab"] = "More like these"
    at.run()
    at.selectbox(key="mlt_source").set_value("merger").run()
    at.button(key="more_like_these").click().run()
    assert not errors(at), errors(at)
    shown = [c["id"] for c in rare_cards(at, "mlt")]
    assert len(shown) == 24 and not set(shown) & set(seeds), "24 new objects like the three tagged ones"
    at.session_state["rare_tab"] = "Tagged"
    at.run()
    counts = next(t for t in html_tables(at) if list(t.columns) == ["tag", "objects"])
    assert dict(zip(counts["tag"], counts["objects"], strict=True)) == {
        t: f"{n:,}" for t, n in tags.tag_counts(atlas).items()} and "merger" in set(counts["tag"])


def test_probe_colours_the_map(atlas_copy: str) -> None:
    from backend import probes
    from backend.spaces import list_spaces

    atlas = open_atlas(atlas_copy)
    space = sorted(list_spaces(atlas))[0]
    probe_id = probes.train_probe(atlas, space, "redshift", "linear")["probe_id"]
    at = app(atlas_copy)
    at.switch_page("pages/probes.py").run()
    assert not errors(at), errors(at)
    assert any(m.label == "r2" for m in at.metric)
    at.button(key="colour_map").click().run()
    assert not errors(at), errors(at)
    assert at.title[0].value == "Map"
    assert at.selectbox[1].value == f"probe:{probe_id}"


def test_jobs_page_launches_an_embedding_job_that_finishes(atlas_copy: str) -> None:
    from backend import jobs

    at = app(atlas_copy)
    at.switch_page("pages/jobs.py").run()
    assert not errors(at), errors(at)
    assert "arp-pair-image" in at.selectbox(key="embed_encoder").options
    at.selectbox(key="embed_encoder").set_value("arp-pair-image")
    at.selectbox(key="embed_device").set_value("cpu")
    at.number_input(key="embed_batch").set_value(32)
    at.button[0].click().run()  # the form's submit button
    assert not errors(at), errors(at)
    job = jobs.wait(open_atlas(atlas_copy), at.session_state[_state.FOLLOWED_JOB], timeout_s=300)
    assert job["status"] == "done", job["message"]
    assert job["params"]["encoder"] == "arp-pair-image" and job["params"]["batch_size"] == 32
    at.run()
    history = [d.value for d in at.dataframe if "job_id" in d.value.columns]
    assert history and job["job_id"] in set(history[0]["job_id"])


def test_jobs_page_says_at_once_which_weights_file_is_missing(atlas_copy: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    at = app(atlas_copy)
    at.switch_page("pages/jobs.py").run()
    at.selectbox(key="embed_encoder").set_value("zoobot")
    at.button[0].click().run()
    assert any("not started" in e.value for e in at.error), [e.value for e in at.error]
    shown = " ".join(c.value for c in at.code)
    assert "WeightsNotFoundError" in shown and "model.safetensors" in shown, shown
    assert str(tmp_path / "weights" / "zoobot-convnext_nano") in shown and "--checkpoint" in shown
    assert _state.FOLLOWED_JOB not in at.session_state


def test_galaxy_filters_restrict_the_neighbours(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    oid = atlas.objects(["object_id"], limit=2)["object_id"].iloc[1]
    at = app(app_atlas, object=oid)
    at.switch_page("pages/galaxy.py").run()
    lo, hi = at.slider(key="z_range").value
    mid = (lo + hi) / 2
    at.slider(key="z_range").set_value((lo, mid)).run()
    at.text_input(key="conditions").input("split = 'train'").run()
    assert not errors(at), errors(at)
    shown = [c["id"] for c in neighbour_cards(at)]
    assert shown, "some neighbours pass the filters"
    rows = atlas.get_objects(shown, ["redshift", "split"])
    assert rows["redshift"].between(lo - 1e-6, mid + 1e-6).all()
    assert set(rows["split"]) == {"train"}
    said = " ".join(c.value for c in at.caption)
    assert f"redshift {lo:.3f}–{mid:.3f}" in said and "where split = 'train'" in said, "the caption says which filters apply"
    at.text_input(key="conditions").input("no_such_column = 1").run()
    assert any("Neighbour search failed" in e.value for e in at.error) and not at.exception


def test_rare_page_says_a_spectrum_space_is_ranked_against_its_redshift(app_atlas: str) -> None:
    at = app(app_atlas)
    at.switch_page("pages/rare.py").run()
    at.session_state["rare_tab"] = "Anomalies"
    spaces = list_spaces(open_atlas(app_atlas))
    for name, info in spaces.items():
        if info.derived_from:
            continue
        at.session_state["rare_space"] = name
        at.run()
        assert not errors(at), errors(at)
        relative = any("nearest in redshift" in c.value for c in at.caption)
        assert relative == (info.modality == "spectrum"), name


def test_rare_page_ranks_and_clusters_the_spectral_indices_on_their_own(app_atlas: str) -> None:
    atlas = open_atlas(app_atlas)
    ranking = anomaly.combined_ranking(atlas)
    expected = ranking.nlargest(24, "anomaly__spectral_indices")["object_id"].tolist()
    at = app(app_atlas)
    at.switch_page("pages/rare.py").run()
    assert {"morphology parameters", "spectral indices"} <= set(at.selectbox(key="rare_space").options)
    at.session_state["rare_space"] = "spectral indices"
    at.run()
    assert not errors(at), errors(at)
    table = rare.clusters(atlas, "spectral_indices")  # clusters of the indices' own anomalous tail
    assert len(table) > 0
    shown = [c["id"] for c in rare_cards(at, f"cl{table['cluster'].iloc[0]}")]
    assert shown == list(table["exemplars"].iloc[0]), "the rarest cluster's exemplars"
    (column, inside, typical), *_ = rare.parameter_signatures(atlas, "spectral_indices", [int(table["cluster"].iloc[0])])[
        int(table["cluster"].iloc[0])]
    heading = next(m.value for m in at.markdown if m.value.startswith(f"**#{table['rank'].iloc[0]} · cluster"))
    assert md_escape(f"median {column} {inside:.3g} (atlas {typical:.3g})") in heading, heading
    members = selection.by_cluster(atlas, "spectral_indices", int(table["cluster"].iloc[0]))
    assert len(members) == table["size"].iloc[0]
    at.session_state["rare_tab"] = "Anomalies"
    at.run()
    assert not errors(at), errors(at)
    assert [c["id"] for c in rare_cards(at, "anom")] == expected, "the set's own top 24, most anomalous first"
    assert any("spectral indices, each robustly standardised" in c.value for c in at.caption)
