"""Thumbnail on map hover: a local Streamlit component (no network) fed by the map component's hover events.

The component's JavaScript (pages/assets/map_hover.js) runs in the page itself, listens to the `arp-map-hover` events
the map (pages/assets/map_canvas.js) sends with the object under the cursor, and sets its state `hovered` to it
(debounced); that reruns only the fragment below, which sends back the object's thumbnail as a PNG data URI for the
card drawn beside the cursor.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from backend.hover import hover_card
from pages import _state
from pages._shared import atlas_uri

_JS = (Path(__file__).parent / "assets" / "map_hover.js").read_text()
_component = st.components.v2.component("arp_map_hover", js=_JS)


def _fetch_card() -> None:
    """Callback of a hover: read the hovered object's card before the fragment reruns."""
    from pages._shared import _open

    hovered = (st.session_state.get(_state.MAP_HOVER) or {}).get("hovered")
    if hovered:
        st.session_state[_state.MAP_HOVER_SHOWN] = hover_card(_open(atlas_uri()), str(hovered))


@st.fragment
def hover_thumbnails() -> None:
    """Mount the hover listener (invisible); it shows the hovered object's thumbnail beside the cursor."""
    _component(key=_state.MAP_HOVER, data=st.session_state.get(_state.MAP_HOVER_SHOWN), height=0,
               on_hovered_change=_fetch_card)
