"""The Map page's map: a local Streamlit component drawing on a canvas (pages/assets/map_canvas.js, ~20 KB, no
network), in place of a Plotly chart whose 4.7 MB script cost every new tab ~3 s on the 2-core box.

Python sends the datashader background, the extent, the clickable sample (float32 coordinates as base64, ids as one
string), the selection and the current galaxy; the component sends back one `action` (click, box, lasso or zoom) in
data coordinates, handled by the page's callback before the rerun.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from backend import render

_JS = (Path(__file__).parent / "assets" / "map_canvas.js").read_text()
_CSS = """
.arp-map { font-family: var(--st-font, sans-serif); color: var(--st-text-color, #fafafa); }
.arp-map-bar { display: flex; gap: .35rem; align-items: center; flex-wrap: wrap; margin-bottom: .35rem; }
.arp-map-bar button { font: inherit; font-size: .85rem; padding: .2rem .6rem; border-radius: .4rem; cursor: pointer;
  color: inherit; background: transparent; border: 1px solid rgba(250, 250, 250, .25); }
.arp-map-bar button[aria-pressed="true"] { background: rgba(255, 75, 75, .2); border-color: rgba(255, 75, 75, .8); }
.arp-map-hint { font-size: .8rem; opacity: .65; margin-left: .4rem; }
.arp-map-body { display: flex; gap: .5rem; align-items: flex-start; }
.arp-map-plot { position: relative; flex: 1 1 auto; min-width: 0; height: var(--arp-map-height, 620px); }
.arp-map-plot canvas { position: absolute; inset: 0; width: 100%; height: 100%; }
.arp-map-overlay { cursor: crosshair; touch-action: none; }
.arp-map-key { flex: 0 0 auto; max-width: 12rem; font-size: .8rem; padding-top: .75rem; }
.arp-map-key-title { font-weight: 600; margin-bottom: .3rem; overflow-wrap: anywhere; }
.arp-map-key-item { display: flex; align-items: center; gap: .4rem; line-height: 1.5; overflow-wrap: anywhere; }
.arp-map-swatch { flex: 0 0 .75rem; height: .75rem; border-radius: 50%; }
.arp-map-colourbar { display: flex; gap: .35rem; height: 14rem; }
.arp-map-ramp { width: .8rem; border-radius: .2rem; }
.arp-map-ramp-ticks { display: flex; flex-direction: column; justify-content: space-between; }
"""
_component = st.components.v2.component("arp_map_canvas", js=_JS, css=_CSS, isolate_styles=False)


def _floats(values: pd.Series) -> str:
    """Numbers as base64 of little-endian float32 (4 bytes a value, not ~10 characters of JSON)."""
    return base64.b64encode(np.ascontiguousarray(values.to_numpy(np.float32), "<f4").tobytes()).decode("ascii")


def map_data(bg: dict, sample: pd.DataFrame, chosen: pd.DataFrame, current: pd.DataFrame, colour: str,
             x_range: tuple[float, float], y_range: tuple[float, float], labels: tuple[str, str]) -> dict:
    """What the component draws: background, extent, axis titles, legend or colour bar, sample, selection, star."""
    legend = [[str(label), hex_] for label, hex_ in (bg["legend"] or {}).items()] or None
    bar = None
    if bg["value_range"] is not None:
        bar = {"title": colour, "range": [float(v) for v in bg["value_range"]], "stops": render.CONTINUOUS_CMAP}
    star = None
    if len(current):
        row = current.iloc[0]
        star = {"id": str(row["object_id"]), "x": float(row["x"]), "y": float(row["y"])}
    return {
        "bg": bg["src"], "x": [float(v) for v in x_range], "y": [float(v) for v in y_range], "labels": list(labels),
        "legend": legend, "legendTitle": colour, "colourbar": bar,
        "points": {"x": _floats(sample["x"]), "y": _floats(sample["y"]), "ids": "\n".join(map(str, sample["object_id"]))},
        "selection": {"x": _floats(chosen["x"]), "y": _floats(chosen["y"])},
        "current": star,
    }


def map_canvas(data: dict, *, key: str, on_action: Callable[[], None]) -> None:
    """Draw the map; a click, box, lasso or zoom in it calls `on_action` (read `action_of(key)` there)."""
    _component(key=key, data=data, on_action_change=on_action)


def action_of(key: str) -> dict | None:
    """The action the map under `key` just sent, inside its callback: {'kind': 'click'|'box'|'lasso'|'zoom', ...}."""
    value = (st.session_state.get(key) or {}).get("action")
    return value if isinstance(value, dict) and value.get("kind") in ("click", "box", "lasso", "zoom") else None
