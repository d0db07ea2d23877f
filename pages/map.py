"""Map: every object drawn by datashader behind a clickable WebGL sample; click opens a galaxy, lasso/box selects."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import maps, probes, render, schema
from backend.neighbours import filter_sql
from backend.store import AtlasError
from pages import _state
from pages._export import export_panel
from pages._shared import (
    get_atlas,
    light_objects,
    md_escape,
    open_button,
    open_galaxy,
    spaces_or_stop,
    table_version,
    thumbnail_grid,
)

WIDTH, HEIGHT = 900, 620
CLICKABLE_DEFAULT = 20_000  # every object of a 10k atlas is clickable; larger maps sample the view
SAMPLED = "map_sampled"  # whether the clickable layer drawn last was a sample of the objects in view
ZOOM_STEP = 2.0

atlas = get_atlas()
st.title("Map")
spaces = spaces_or_stop(atlas)


@st.cache_data(show_spinner=False, max_entries=8)
def map_frame(uri: str, space: str, version: int) -> pd.DataFrame | None:
    """The stored UMAP map of a space (x, y, cluster, anomaly scores...)."""
    return maps.load_map(atlas, space)


@st.cache_data(show_spinner=False, max_entries=2)
def sky_frame(uri: str, version: int) -> pd.DataFrame:
    """RA/Dec of every object as a map frame."""
    return maps.sky_map(atlas)


@st.cache_data(show_spinner=False, max_entries=8)
def colour_values(uri: str, colour: str, version: int) -> pd.DataFrame:
    """object_id + one colour column: an objects column or a probe's predictions (`probe:<id>`)."""
    if colour.startswith("probe:"):
        pred = probes.predictions(atlas, colour.removeprefix("probe:"))
        return pred[["object_id", "prediction"]].rename(columns={"prediction": colour})
    return atlas.objects(["object_id", colour])


@st.cache_data(show_spinner=False, max_entries=32)
def background(frame: pd.DataFrame, colour: str | None, x_range: tuple, y_range: tuple) -> render.Rendered:
    """Datashader image of all points for the current extent and colour."""
    in_view = int((frame["x"].between(*x_range) & frame["y"].between(*y_range)).sum())
    spread = 2 if in_view < 5_000 else 1 if in_view < 100_000 else 0  # sparse maps: make single points visible
    return render.render(frame, colour, x_range=x_range, y_range=y_range, width=WIDTH, height=HEIGHT, spread=spread)


def colour_options(frame: pd.DataFrame) -> list[str]:
    """Density, map columns (cluster, anomaly scores), catalogue columns and probe predictions."""
    map_cols = [c for c in frame.columns if c not in ("object_id", "x", "y", "params_key")]
    obj_cols = ["redshift", *atlas.label_columns()]
    probe_cols = [f"probe:{p}" for p in probes.list_probes(atlas)["probe_id"]]
    return ["density", *dict.fromkeys([*map_cols, *obj_cols, *probe_cols])]


def with_colour(frame: pd.DataFrame, colour: str, umap: pd.DataFrame) -> pd.DataFrame:
    """The frame with the colour column joined on (from the UMAP map, the objects table or a probe)."""
    if colour == "density" or colour in frame.columns:
        return frame
    if colour in umap.columns:
        values = umap[["object_id", colour]]
    else:
        version = table_version(atlas, "probes" if colour.startswith("probe:") else "objects")
        values = colour_values(atlas.uri, colour, version)
    return frame.merge(values, on="object_id", how="left")


def zoom_controls(name: str, frame: pd.DataFrame) -> tuple[tuple[float, float], tuple[float, float]]:
    """Explicit zoom in/out/reset/to-selection buttons; the background is re-rendered for the new extent."""
    full = render.extent(frame)
    zooms = st.session_state.setdefault(_state.MAP_ZOOM, {})
    (x0, x1), (y0, y1) = zooms.get(name, full)
    cols = st.columns(5)

    def scaled(factor: float) -> tuple[tuple[float, float], tuple[float, float]]:
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * factor, (y1 - y0) / 2 * factor
        return (cx - hx, cx + hx), (cy - hy, cy + hy)

    if cols[0].button("Zoom in", key=f"{name}_zin", icon=":material/zoom_in:"):
        zooms[name] = scaled(1 / ZOOM_STEP)
    if cols[1].button("Zoom out", key=f"{name}_zout", icon=":material/zoom_out:"):
        zooms[name] = scaled(ZOOM_STEP)
    if cols[2].button("Reset view", key=f"{name}_zreset", icon=":material/fit_screen:"):
        zooms.pop(name, None)
    selected = st.session_state.get(_state.MAP_SELECTION) or []
    if cols[3].button("Zoom to selection", key=f"{name}_zsel", disabled=len(selected) < 2):
        sel = frame[frame["object_id"].isin(set(selected))]
        if len(sel) >= 2:
            zooms[name] = render.extent(sel, pad=0.1)
    return zooms.get(name, full)


def map_view(name: str, frame: pd.DataFrame, colour: str, cap: int, labels: tuple[str, str], umap: pd.DataFrame) -> None:
    """One map: background image + clickable sample + selection handling."""
    x_range, y_range = zoom_controls(name, frame)
    coloured = with_colour(frame, colour, umap)
    colour_col = None if colour == "density" else colour
    bg = background(coloured[["object_id", "x", "y", *([colour_col] if colour_col else [])]], colour_col, x_range, y_range)
    selected = set(st.session_state.get(_state.MAP_SELECTION) or [])
    sample = render.sample_points(frame, cap, x_range=x_range, y_range=y_range)
    inside = int((frame["x"].between(*x_range) & frame["y"].between(*y_range)).sum())

    fig = go.Figure()
    fig.add_layout_image(
        source="data:image/png;base64," + base64.b64encode(bg.png()).decode(), xref="x", yref="y", x=x_range[0],
        y=y_range[1], sizex=x_range[1] - x_range[0], sizey=y_range[1] - y_range[0], sizing="stretch", layer="below",
    )
    fig.add_trace(go.Scattergl(
        x=sample["x"].to_numpy(np.float32), y=sample["y"].to_numpy(np.float32), customdata=sample["object_id"],
        mode="markers", name="objects",  # float32 arrays travel as 4-byte binary, not 17-digit JSON
        marker={"size": 6, "color": "rgba(255,255,255,0.08)", "line": {"width": 0}},
        hovertemplate="%{customdata}<extra></extra>", showlegend=False,
    ))
    if selected:
        chosen = frame[frame["object_id"].isin(selected)]
        fig.add_trace(go.Scattergl(
            x=chosen["x"], y=chosen["y"], customdata=chosen["object_id"], mode="markers", name="selection",
            marker={"size": 5, "color": "rgba(255,80,80,0.9)"}, hovertemplate="%{customdata}<extra></extra>",
            showlegend=False,
        ))
    current = frame[frame["object_id"] == st.session_state.get(_state.OBJECT_ID)]
    if len(current):  # the galaxy opened last, so the map shows where it sits
        fig.add_trace(go.Scatter(
            x=current["x"], y=current["y"], customdata=current["object_id"], mode="markers", name="current galaxy",
            marker={"size": 16, "symbol": "star", "color": "#ffd166", "line": {"width": 1.5, "color": "#000"}},
            hovertemplate="current: %{customdata}<extra></extra>", showlegend=False,
        ))
    for label, colour_hex in (bg.legend or {}).items():  # a labelled legend for categorical colouring
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, hoverinfo="skip",
                                 marker={"size": 10, "color": colour_hex}, showlegend=True))
    if bg.value_range is not None:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
            marker={"colorscale": render.CONTINUOUS_CMAP, "cmin": bg.value_range[0], "cmax": bg.value_range[1],
                    "color": [bg.value_range[0]], "showscale": True, "colorbar": {"title": colour, "thickness": 12}},
        ))
    fig.update_layout(
        height=HEIGHT, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="zoom", showlegend=bool(bg.legend),
        legend={"title": {"text": colour}, "itemclick": False, "itemdoubleclick": False},
        xaxis={"range": list(x_range), "title": labels[0], "showgrid": False, "zeroline": False},
        yaxis={"range": list(y_range), "title": labels[1], "showgrid": False, "zeroline": False},
        plot_bgcolor="rgba(0,0,0,0)",
    )
    partial = len(sample) < inside
    st.session_state[SAMPLED] = partial
    st.caption(
        f"{inside:,} objects in view, all drawn and all clickable. Click a point to open it; lasso or box to select "
        "every object inside." if not partial else
        f"{inside:,} objects in view (all drawn), {len(sample):,} of them clickable: a click opens the nearest clickable "
        "point and says so. Zoom in (or raise 'Clickable points') to reach every object; lasso or box selects them all."
    )
    event = st.plotly_chart(fig, key=f"chart_{name}", on_select="rerun", selection_mode=("points", "box", "lasso"),
                            config={"scrollZoom": False, "displaylogo": False})
    handle_selection(name, frame, event)


def handle_selection(name: str, frame: pd.DataFrame, event: object) -> None:
    """A single clicked point opens the galaxy; a box or lasso selects ALL objects inside (server side)."""
    sel = getattr(event, "selection", None) or {}
    points, boxes, lassos = sel.get("points", []), sel.get("box", []), sel.get("lasso", [])
    signature = repr((points, boxes, lassos))
    handled = st.session_state.setdefault(_state.MAP_HANDLED, {})
    if not (points or boxes or lassos) or handled.get(name) == signature:
        return
    handled[name] = signature
    if boxes or lassos:
        ids: list[str] = []
        for box in boxes:
            ids += render.points_in_box(frame, tuple(box["x"]), tuple(box["y"]))
        for lasso in lassos:
            ids += render.points_in_polygon(frame, list(zip(lasso["x"], lasso["y"], strict=True)))
        st.session_state[_state.MAP_SELECTION] = list(dict.fromkeys(ids))
        st.rerun()
    ids = [p["customdata"] for p in points if p.get("customdata") is not None]
    if len(ids) == 1:
        if st.session_state.get(SAMPLED):
            st.session_state[_state.OPENED_NOTICE] = (
                f"Opened {ids[0]}, the clickable point nearest to your click: this view shows a sample of its objects "
                "as clickable points. Zoom in on the map to reach every object."
            )
        open_galaxy(str(ids[0]))
    elif ids:
        st.session_state[_state.MAP_SELECTION] = list(dict.fromkeys(map(str, ids)))
        st.rerun()


@st.cache_data(show_spinner=False, max_entries=16)
def ids_where(uri: str, where: str, version: int) -> set[str]:
    """Ids of the objects matching a SQL predicate (AtlasError with the reason when it is not valid)."""
    try:
        return set(atlas.objects(["object_id"], where=where)["object_id"])
    except Exception as exc:  # noqa: BLE001 - Lance raises plain errors for a bad predicate
        raise AtlasError(f"the condition {where!r} is not valid: {str(exc).splitlines()[0]}") from None


def map_filter(frame: pd.DataFrame) -> tuple[pd.DataFrame, set[str] | None]:
    """A redshift range and column conditions on the map itself: the map keeps only matching objects."""
    catalogue = light_objects(atlas)
    z_all = catalogue["redshift"].dropna() if "redshift" in catalogue.columns else pd.Series(dtype=float)
    z_lo, z_hi = (float(z_all.min()), float(z_all.max())) if len(z_all) else (0.0, 1.0)
    z_hi = max(z_hi, z_lo + 1e-3)
    with st.expander("Filter the map", icon=":material/filter_alt:"):
        z_range = st.slider("Redshift range", z_lo, z_hi, (z_lo, z_hi), key="map_z_range", format="%.3f")
        condition = st.text_input("Column conditions", key="map_condition",
                                  placeholder="e.g. morphology = 'spiral' AND split = 'test'",
                                  help="A SQL predicate over the objects' columns.")
    where = filter_sql(condition.strip() or None, z_range=None if tuple(z_range) == (z_lo, z_hi) else tuple(z_range))
    if not where:
        return frame, None
    try:
        keep = ids_where(atlas.uri, where, table_version(atlas, "objects"))
    except AtlasError as exc:
        st.error(md_escape(exc))
        return frame, None
    st.caption(md_escape(f"Filter: {where} — {len(keep):,} objects match."))
    return frame[frame["object_id"].isin(keep)], keep


def redshift_label(row: pd.Series) -> str:
    """Id and redshift of a selected object."""
    z = row.get("redshift")
    if z is None or pd.isna(z):
        return str(row["object_id"])
    return f"{row['object_id']} · z={float(z):.4f}"


default_space = spaces.index(st.session_state[_state.MAP_SPACE]) if st.session_state.get(_state.MAP_SPACE) in spaces else 0
cols = st.columns([2, 2, 1])
space = cols[0].selectbox("Space", spaces, index=default_space)
st.session_state[_state.MAP_SPACE] = space
frame = map_frame(atlas.uri, space, table_version(atlas, schema.maps_table(space)))
if frame is None:
    st.info(f"No map of {space} yet.")
    if st.button("Compute the UMAP map", type="primary"):
        with st.spinner("Fitting UMAP…"):
            maps.compute_map(atlas, space)
        st.rerun()
    st.stop()

options = colour_options(frame)
wanted = st.session_state.get(_state.MAP_COLOUR, "density")
colour = cols[1].selectbox("Colour by", options, index=options.index(wanted) if wanted in options else 0)
st.session_state[_state.MAP_COLOUR] = colour
cap = cols[2].number_input("Clickable points", 500, 50_000, CLICKABLE_DEFAULT, step=500,
                           help="Points drawn as clickable markers; beyond this a random sample of those in view.")
frame, sky_filter = map_filter(frame)

view = st.segmented_control("View", ["Embedding map (UMAP)", "Sky map (RA, Dec)"], default="Embedding map (UMAP)",
                            key="map_view", label_visibility="collapsed") or "Embedding map (UMAP)"
if view.startswith("Embedding"):
    try:
        map_view(f"umap_{space}", frame, colour, int(cap), ("UMAP 1", "UMAP 2"), frame)
    except AtlasError as exc:
        st.error(str(exc))
else:  # the same selection, drawn on the sky
    sky = sky_frame(atlas.uri, table_version(atlas, "objects"))
    map_view("sky", sky if sky_filter is None else sky[sky["object_id"].isin(sky_filter)], colour, int(cap),
             ("RA (deg)", "Dec (deg)"), frame)

selection = st.session_state.get(_state.MAP_SELECTION) or []
st.subheader(f"Selection: {len(selection):,} objects")
if selection:
    catalogue = light_objects(atlas)
    chosen = catalogue[catalogue["object_id"].isin(set(selection))]
    export_panel(atlas, pd.DataFrame({"object_id": selection}), name=f"map selection of {space}", key="export_selection")
    if st.button("Clear selection", key="clear_selection", icon=":material/deselect:"):
        st.session_state[_state.MAP_SELECTION] = []
        st.rerun()
    shown = atlas.get_objects(selection[:60], ["thumbnail", "redshift"])
    if len(selection) > 60:
        st.caption(f"Showing the first 60 of {len(selection):,}; the export has all of them.")
    thumbnail_grid(shown, label=redshift_label, actions=lambda row: open_button(row, key="sel"))
else:
    st.caption("Lasso or box-select on either map (toolbar top right of the plot) to select objects.")
