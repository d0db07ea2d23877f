"""The Find box on every page: an object id, a name-like id, or RA Dec (degrees or sexagesimal) with a radius."""

from __future__ import annotations

import streamlit as st

from backend import find
from backend.store import Atlas, AtlasError

FIND_QUERY, FIND_RADIUS = "find_query", "find_radius"


def find_box(atlas: Atlas) -> None:
    """Sidebar search: one match opens its galaxy page; several are listed, nearest or best first."""
    from pages._shared import md_escape, open_galaxy

    box = st.sidebar.container(border=True)
    with box.form("find_form", border=False, enter_to_submit=True):
        query = st.text_input("Find", key=FIND_QUERY, placeholder="id, name or RA Dec",
                              help="`sdss-00042`, `SDSS 42`, `226.4427 +12.3556` or `15:05:46.3 +12:21:20` (ICRS)")
        radius = st.number_input("Cone radius (arcsec)", 0.1, 3600.0, find.DEFAULT_RADIUS_ARCSEC, key=FIND_RADIUS)
        go = st.form_submit_button("Find", icon=":material/search:")
    if not query.strip():
        return
    try:
        result = find.find(atlas, query, float(radius))
    except AtlasError as exc:
        box.warning(md_escape(exc))
        return
    if go and len(result.objects) == 1:
        open_galaxy(str(result.objects["object_id"].iloc[0]))
    box.caption(md_escape(result.message))
    for _, row in result.objects.head(10).iterrows():
        sep = f' · {row["separation_arcsec"]:.1f}"' if "separation_arcsec" in row.index else ""
        if box.button(md_escape(f"{row['object_id']}{sep}"), key=f"find_open_{row['object_id']}", icon=":material/open_in_new:",
                      type="tertiary"):
            open_galaxy(str(row["object_id"]))


def find_sidebar() -> None:
    """The Find box, when the session's atlas opens (the page itself explains an atlas that does not)."""
    from pages._shared import _open, atlas_uri

    try:
        atlas = _open(atlas_uri())
    except AtlasError:
        return
    find_box(atlas)
