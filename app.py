"""Arp: an atlas of galaxy surveys in foundation-model space. `streamlit run app.py [-- --atlas DIR]`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from pages import _state
from pages._find import find_sidebar
from pages._shared import (  # backend.store quiets Lance's log
    app_frame,
    atlas_uri,
    get_atlas,
    html_table,
    light_objects,
    surveys,
    tagged_object_count,
    vector_counts,
)
from pages._shared import spaces as cached_spaces

# The page icon, served by the app (a Material icon as page_icon made every tab fetch its SVG from fonts.gstatic.com).
ICON = str(Path(__file__).parent / "pages" / "assets" / "arp_icon.png")

if TYPE_CHECKING:
    import pandas as pd

    from backend.spaces import SpaceInfo
    from backend.store import Atlas


def home() -> None:
    """Overview of the open atlas, top to bottom: counts, where to start, surveys, embedding spaces, running jobs."""
    st.title("Arp")
    st.caption("An atlas of galaxy surveys in foundation-model space.")
    atlas = get_atlas()
    st.markdown(f"Atlas: `{atlas.uri}`")
    objects = light_objects(atlas)
    spaces = cached_spaces(atlas)
    counts(atlas, objects, spaces)
    guide(objects)
    surveys_table(objects)
    spaces_table(atlas, spaces)
    running_jobs(atlas)


def counts(atlas: Atlas, objects: pd.DataFrame, spaces: dict[str, SpaceInfo]) -> None:
    """Objects, surveys, embedding spaces and tagged objects, as four tiles."""
    cols = st.columns(4)
    cols[0].metric("Objects", f"{len(objects):,}")
    cols[1].metric("Surveys", len(surveys(atlas)))
    cols[2].metric("Embedding spaces", len(spaces))
    cols[3].metric("Tagged objects", f"{tagged_object_count(atlas):,}")


def surveys_table(objects: pd.DataFrame) -> None:
    """Objects per survey."""
    if len(objects):
        st.subheader("Surveys")
        per_survey = objects.groupby("survey", dropna=False).size().rename("objects").reset_index()
        html_table(per_survey, cls="arp-narrow")


def spaces_table(atlas: Atlas, spaces: dict[str, SpaceInfo]) -> None:
    """Each embedding space with its encoder, size and provenance, or how to make the first one."""
    import pandas as pd

    st.subheader("Embedding spaces")
    if not spaces:
        st.info("No embedding space yet: run an embedding job from the Jobs page or `python -m embeddings embed`.")
        return
    vectors = vector_counts(atlas, [info.table for info in spaces.values()])
    rows = [
        {
            "space": name,
            "encoder": info.encoder,
            "modality": info.modality,
            "dim": info.dim,
            "vectors": vectors[info.table],
            "weights": info.weights_revision,
            "preprocess": info.preprocess_version,
            "aligned group": info.aligned_group,
        }
        for name, info in spaces.items()
    ]
    html_table(pd.DataFrame(rows))


def running_jobs(atlas: Atlas) -> None:
    """The jobs queued or running now."""
    from backend import jobs

    st.subheader("Jobs running")
    all_jobs = jobs.list_jobs(atlas)
    running = all_jobs[all_jobs["status"].isin(jobs.ACTIVE)] if len(all_jobs) else all_jobs
    if len(running):
        html_table(running[["job_id", "kind", "status", "progress", "message"]])
    else:
        st.caption("No job running.")


GUIDE = (
    ("Map", "every object on a UMAP of an embedding space (or the sky): colour by any column, click a dot to open it, "
     "lasso a region to see and export it"),
    ("Galaxy", "one object: cutout with scale bar, spectrum with lines, links to Legacy Survey, SDSS, NED and SIMBAD, "
     "and its nearest neighbours image→image, spectrum→spectrum and across"),
    ("Rare", "the rarest clusters and the most anomalous objects; vote and tag, re-rank from your votes, export"),
    ("Probes", "how much a space knows about redshift or a label: train a probe in the background"),
    ("Jobs", "embedding jobs on new encoders, with live progress"),
    ("Data", "where the objects came from; upload FITS, HDF5 or a catalogue"),
)


def guide(objects: object) -> None:
    """What each page is for, and three next steps."""
    from pages._shared import open_galaxy

    with st.container(border=True):
        st.markdown("**Where to start**")
        for page, what in GUIDE:
            st.markdown(f"- **{page}**: {what}")  # fixed text, not data
        st.caption("Find any object from the sidebar by id, name or RA Dec. Tagging shortcuts on the Galaxy page: "
                   "g ring, m merger, l lens, a artefact, i interesting, b boring.")
        cols = st.columns(3)
        if cols[0].button("Open the map", icon=":material/scatter_plot:", key="guide_map", type="primary"):
            st.switch_page("pages/map.py")
        if cols[1].button("See the rarest objects", icon=":material/diamond:", key="guide_rare"):
            st.switch_page("pages/rare.py")
        if cols[2].button("Open a random galaxy", icon=":material/casino:", key="guide_random", disabled=not len(objects)):
            open_galaxy(str(objects["object_id"].sample(1).iloc[0]))


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per server: import and JIT-compile the map renderer in the background, so the first Map visit is quick
    (three compilations, as many as before; every categorical colouring shares one since render uses generic labels)."""

    def work() -> None:
        import numpy as np
        import pandas as pd

        from backend import render

        # numba compiles per coordinate dtype: the UMAP maps' float32 (the sky's float64 compiles on its first view)
        xy = np.array([0.0, 1.0, 0.5], dtype=np.float32)
        frame = pd.DataFrame({"object_id": ["a", "b", "c"], "x": xy, "y": xy, "v": [0.1, 0.2, 0.3],
                              "c": ["u", "u", "w"]})  # "u" dominates: the grey layer underneath is compiled too
        for colour in (None, "v", "c"):
            render.render(frame, colour, width=8, height=8, spread=1)

    thread = threading.Thread(target=work, name="arp-warm-up", daemon=True)
    thread.start()
    return thread


def sidebar_picker() -> None:
    """The atlas picker: any atlas folder or LanceDB URI."""
    if not st.session_state.get(_state.ATLAS_URI):
        st.session_state[_state.ATLAS_URI] = atlas_uri()
    st.sidebar.text_input(
        "Atlas folder or URI", key=_state.ATLAS_URI, help="Default: --atlas, then $ARP_ATLAS, then the demo."
    )


def app_pages() -> list[st.Page]:
    """Every page of the app, in menu order (the one place pages are defined)."""
    return [
        # The root URL shows Home; /home (the menu's link) is pages/home.py, so it resolves like every other page.
        st.Page(home, title="Home", icon=":material/home:", url_path="start", default=True, visibility="hidden"),
        st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home"),
        st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:", url_path="map"),
        st.Page("pages/galaxy.py", title="Galaxy", icon=":material/star:", url_path="galaxy"),
        st.Page("pages/rare.py", title="Rare", icon=":material/diamond:", url_path="rare"),
        st.Page("pages/probes.py", title="Probes", icon=":material/query_stats:", url_path="probes"),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/memory:", url_path="jobs"),
        st.Page("pages/data.py", title="Data", icon=":material/database:", url_path="data"),
    ]


def main() -> None:
    """The frame around every page: page config, atlas picker, navigation; then the chosen page."""
    st.set_page_config(page_title="Arp", page_icon=ICON, layout="wide")
    sidebar_picker()
    try:
        with app_frame():
            page = st.navigation(app_pages())
            find_sidebar()
            page.run()
    finally:  # after the first page is drawn: the JIT would hold the GIL (and a core) while it is drawn
        warm_up()


if __name__ == "__main__":  # `streamlit run app.py` runs this file as __main__
    main()
