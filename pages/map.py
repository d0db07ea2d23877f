"""Map: every object drawn by datashader on a light canvas component; a click opens the object under the cursor
(found among all objects on the server), box or lasso selects every object inside.

Frames are shared between reruns without a copy (maps, sky positions, colour columns) and the background image is
cached by what it shows (atlas, view, table versions, colour, filter, extent), so a rerun never hashes or copies the
whole catalogue. A hover shows the object's thumbnail beside the cursor (pages/_hover.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from backend import maps, probes, render, schema, similar, tags
from backend.hover import png_data_uri
from backend.neighbours import filter_sql
from backend.store import Atlas, AtlasError
from pages import _state
from pages._cards import card_gallery, frame_cards
from pages._export import export_panel
from pages._hover import hover_thumbnails
from pages._map_canvas import action_of, map_canvas, map_data
from pages._shared import (
    TAG_BUTTONS,
    _open,
    get_atlas,
    md_escape,
    open_galaxy,
    redshift_range,
    spaces_or_stop,
    table_version,
    undo_button,
)

WIDTH, HEIGHT = 900, 620
HOVER_DEFAULT = 20_000  # every object of a 10k atlas shows its thumbnail on hover; larger maps sample the view
ZOOM_STEP = 2.0
GALLERY_MAX = 60
MORE_LIKE_THESE_N = 24
CLICK_PX = 8  # a click opens the nearest object within this many screen pixels
UNDER_CURSOR_PX = 3  # ... and says what it opened when that is further than this from the cursor
MAP_NOTICE = "map_notice"  # what a click on the map did not do (nothing near it), shown once above the map


def main() -> None:
    """The page, top to bottom: a click to act on first, then controls, the map, the selection and 'more like these'."""
    atlas = get_atlas()
    open_clicked_object()
    st.title("Map")
    spaces = spaces_or_stop(atlas)
    controls = st.columns([2, 2, 1])
    space = space_choice(spaces, controls[0])
    frame = map_or_offer_to_compute(atlas, space)
    colour = colour_choice(atlas, frame, controls[1])
    cap = int(controls[2].number_input("Hover points", 100, 50_000, HOVER_DEFAULT, step=500,
                                       help="Points that show their thumbnail on hover; beyond this a random sample of "
                                            "those in view. A click opens the object under the cursor among all."))
    shown, kept, where = map_filter(atlas, frame)
    draw_maps(atlas, space, shown, kept, where, colour, cap)
    hover_thumbnails()
    selection = selection_section(atlas, space)
    more_like_these_section(atlas, space, selection)


# ----------------------------------------------------------------------------------------------- data, cached
@st.cache_resource(show_spinner=False, max_entries=8)
def map_frame(uri: str, space: str, version: int) -> pd.DataFrame | None:
    """The stored UMAP map of a space (x, y, cluster, anomaly scores...): shared, read only."""
    return maps.load_map(_open(uri), space)


@st.cache_resource(show_spinner=False, max_entries=2)
def sky_frame(uri: str, version: int) -> pd.DataFrame:
    """RA/Dec of every object as a map frame: shared, read only."""
    return maps.sky_map(_open(uri))


@st.cache_resource(show_spinner=False, max_entries=8)
def colour_values(uri: str, colour: str, version: int) -> pd.DataFrame:
    """object_id + one colour column: an objects column or a probe's predictions (`probe:<id>`): shared, read only."""
    atlas = _open(uri)
    if colour.startswith("probe:"):
        pred = probes.predictions(atlas, colour.removeprefix("probe:"))
        return pred[["object_id", "prediction"]].rename(columns={"prediction": colour})
    return atlas.objects(["object_id", colour])


@st.cache_data(show_spinner=False, max_entries=32)
def background(key: tuple, x_range: tuple, y_range: tuple, _frame: Callable[[], pd.DataFrame], colour: str | None) -> dict:
    """Datashader image of all points for the extent and colour, as a PNG data URI with its legend / value range.

    `key` names what `_frame()` holds (atlas, view, table versions, filter), so the frame itself is never hashed.
    """
    frame = _frame()
    in_view = int((frame["x"].between(*x_range) & frame["y"].between(*y_range)).sum())
    spread = 2 if in_view < 5_000 else 1 if in_view < 100_000 else 0  # sparse maps: make single points visible
    bg = render.render(frame, colour, x_range=x_range, y_range=y_range, width=WIDTH, height=HEIGHT, spread=spread)
    return {"src": png_data_uri(bg.png()), "legend": bg.legend, "value_range": bg.value_range}


@st.cache_data(show_spinner=False, max_entries=16)
def ids_where(uri: str, where: str, version: int) -> frozenset[str]:
    """Ids of the objects matching a SQL predicate (AtlasError with the reason when it is not valid)."""
    try:
        return frozenset(_open(uri).objects(["object_id"], where=where)["object_id"])
    except Exception as exc:  # noqa: BLE001 - Lance raises plain errors for a bad predicate
        raise AtlasError(f"the condition {where!r} is not valid: {str(exc).splitlines()[0]}") from None


# ----------------------------------------------------------------------------------------------- controls
def open_clicked_object() -> None:
    """A click on a map point or a gallery card's Open (handled by their callbacks) opens its galaxy before anything
    is drawn."""
    if oid := st.session_state.pop(_state.MAP_OPEN, None):
        open_galaxy(oid)
    if (card_action := st.session_state.pop(_state.MAP_CARD_ACTION, None)) and card_action["kind"] == "open":
        open_galaxy(card_action["id"])


def space_choice(spaces: list[str], where: object) -> str:
    """The embedding space shown (remembered for the Rare page)."""
    return remembered_choice(where, "Space", spaces, _state.MAP_SPACE, "map_space_pick")


def map_or_offer_to_compute(atlas: Atlas, space: str) -> pd.DataFrame:
    """The space's stored map; without one, a button that computes it, and the page stops."""
    frame = map_frame(atlas.uri, space, table_version(atlas, schema.maps_table(space)))
    if frame is None:
        st.info(f"No map of {space} yet.")
        if st.button("Compute the UMAP map", type="primary"):
            with st.spinner("Fitting UMAP…"):
                maps.compute_map(atlas, space)
            st.rerun()
        st.stop()
    return frame


def colour_options(atlas: Atlas, frame: pd.DataFrame) -> list[str]:
    """Density, map columns (cluster, anomaly scores), catalogue columns and probe predictions."""
    map_cols = [c for c in frame.columns if c not in ("object_id", "x", "y", "params_key")]
    obj_cols = ["redshift", *atlas.label_columns()]
    probe_cols = [f"probe:{p}" for p in probes.list_probes(atlas)["probe_id"]]
    return ["density", *dict.fromkeys([*map_cols, *obj_cols, *probe_cols])]


def colour_choice(atlas: Atlas, frame: pd.DataFrame, where: object) -> str:
    """The column the map is coloured by (remembered between visits)."""
    return remembered_choice(where, "Colour by", colour_options(atlas, frame), _state.MAP_COLOUR, "map_colour_pick")


def remembered_choice(where: object, label: str, options: list[str], remembered: str, key: str) -> str:
    """A select box keyed once, so that its identity never changes with its value (a keyless one whose index followed
    the last pick became a new widget after each pick, and a quick second pick was lost). Its value lives under
    `remembered`, which other pages may set (the Probes page's "colour the map by this probe")."""
    current = st.session_state.get(key)
    wanted = st.session_state.get(remembered)
    if wanted not in options:
        wanted = current if current in options else options[0]
    st.session_state[remembered] = wanted
    if current != wanted:  # set only on a change from elsewhere: a value set from the script is pushed to the browser,
        st.session_state[key] = wanted  # and one pushed on every run could undo a pick made while a run was going on
    return where.selectbox(label, options, key=key, on_change=_remember, args=(key, remembered))


def _remember(key: str, remembered: str) -> None:
    """A pick in a remembered select box, stored where the other pages read it."""
    st.session_state[remembered] = st.session_state[key]


def map_filter(atlas: Atlas, frame: pd.DataFrame) -> tuple[pd.DataFrame, frozenset[str] | None, str]:
    """A redshift range and column conditions on the map itself: the map keeps only matching objects.

    Returns the kept frame, the kept ids (None when nothing filters) and the SQL condition ('' when none).
    """
    z_lo, z_hi = redshift_range(atlas)
    # a popover draws its widgets only when opened (an expander's, every new tab); the caption below says what applies
    with st.popover("Filter the map", icon=":material/filter_alt:"):
        z_range = st.slider("Redshift range", z_lo, z_hi, (z_lo, z_hi), key="map_z_range", format="%.3f")
        condition = st.text_input("Column conditions", key="map_condition",
                                  placeholder="e.g. morphology = 'spiral' AND split = 'test'",
                                  help="A SQL predicate over the objects' columns.")
    where = filter_sql(condition.strip() or None, z_range=None if tuple(z_range) == (z_lo, z_hi) else tuple(z_range))
    if not where:
        return frame, None, ""
    try:
        keep = ids_where(atlas.uri, where, table_version(atlas, schema.OBJECTS))
    except AtlasError as exc:
        st.error(md_escape(exc))
        return frame, None, ""
    st.caption(md_escape(f"Filter: {where} — {len(keep):,} objects match."))
    return frame[frame["object_id"].isin(keep)], keep, where


# ----------------------------------------------------------------------------------------------- the map
def draw_maps(atlas: Atlas, space: str, frame: pd.DataFrame, kept: frozenset[str] | None, where: str, colour: str,
              cap: int) -> None:
    """The embedding map or the sky map of the same (filtered) objects, as the user picks."""
    view = st.segmented_control("View", ["Embedding map (UMAP)", "Sky map (RA, Dec)"], default="Embedding map (UMAP)",
                                key="map_view", label_visibility="collapsed") or "Embedding map (UMAP)"
    versions = (table_version(atlas, schema.maps_table(space)), table_version(atlas, schema.OBJECTS),
                table_version(atlas, "probes"))
    try:
        if view.startswith("Embedding"):
            map_view(atlas, f"umap_{space}", frame, colour, cap, ("UMAP 1", "UMAP 2"), frame, (*versions, where))
        else:
            sky = sky_frame(atlas.uri, table_version(atlas, schema.OBJECTS))
            map_view(atlas, "sky", sky if kept is None else sky[sky["object_id"].isin(kept)], colour, cap,
                     ("RA (deg)", "Dec (deg)"), frame, (*versions, where))
    except AtlasError as exc:
        st.error(md_escape(exc))


def with_colour(atlas: Atlas, frame: pd.DataFrame, colour: str, umap: pd.DataFrame) -> pd.DataFrame:
    """The frame with the colour column joined on (from the UMAP map, the objects table or a probe)."""
    if colour == "density" or colour in frame.columns:
        return frame
    if colour in umap.columns:
        values = umap[["object_id", colour]]
    else:
        version = table_version(atlas, "probes" if colour.startswith("probe:") else schema.OBJECTS)
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


def map_view(atlas: Atlas, name: str, frame: pd.DataFrame, colour: str, cap: int, labels: tuple[str, str],
             umap: pd.DataFrame, versions: tuple) -> None:
    """One map: background image + hover sample; a click, box, lasso or zoom is handled by `on_map_action`."""
    x_range, y_range = zoom_controls(name, frame)
    colour_col = None if colour == "density" else colour

    def coloured() -> pd.DataFrame:
        return with_colour(atlas, frame, colour, umap)[["object_id", "x", "y", *([colour_col] if colour_col else [])]]

    bg = background((atlas.uri, name, *versions, colour), tuple(x_range), tuple(y_range), coloured, colour_col)
    sample = render.sample_points(frame, cap, x_range=x_range, y_range=y_range)
    inside = int((frame["x"].between(*x_range) & frame["y"].between(*y_range)).sum())
    selected = st.session_state.get(_state.MAP_SELECTION) or []
    chosen = frame[frame["object_id"].isin(set(selected))] if selected else frame.iloc[:0]
    current = frame[frame["object_id"] == st.session_state.get(_state.OBJECT_ID)]
    if notice := st.session_state.pop(MAP_NOTICE, None):
        st.info(md_escape(notice), icon=":material/info:")
    st.caption(
        f"{inside:,} objects in view, all drawn and all clickable. Click a point to open it; Box select or Lasso "
        "select (above the map, or shift-/alt-drag) selects every object inside; in Zoom mode a drag zooms in. "
        "Hover a point to see its thumbnail." if len(sample) == inside else
        f"{inside:,} objects in view, all drawn and all clickable: a click opens the object under the cursor. "
        f"{len(sample):,} of them show their thumbnail on hover (raise 'Hover points' or zoom in for more). Box or "
        "lasso selects every object inside."
    )
    key = "map_" + name.replace("__", "-")  # a component's key may not hold "__" (space names do)
    map_canvas(map_data(bg, sample, chosen, current, colour, x_range, y_range, labels), key=key,
               on_action=partial(on_map_action, key, name, frame))


def on_map_action(key: str, name: str, frame: pd.DataFrame) -> None:
    """Map callback, before the rerun: a box or lasso selects ALL objects inside (server side), a drag in Zoom mode
    zooms, a click opens the object under the cursor (first thing on the next run)."""
    action = action_of(key)
    try:
        if action is None:
            return
        if action["kind"] == "box":
            ids = render.points_in_box(frame, _pair(action["x"]), _pair(action["y"]))
        elif action["kind"] == "lasso":
            ids = render.points_in_polygon(frame, list(zip(_numbers(action["x"]), _numbers(action["y"]), strict=True)))
        elif action["kind"] == "zoom":
            (x0, x1), (y0, y1) = _pair(action["x"]), _pair(action["y"])
            if x1 > x0 and y1 > y0:
                st.session_state.setdefault(_state.MAP_ZOOM, {})[name] = ((x0, x1), (y0, y1))
            return
        else:
            open_under_cursor(frame, (float(action["x"]), float(action["y"])), _pair(action["unit"]))
            return
    except (KeyError, TypeError, ValueError):  # a malformed action from the browser is ignored
        return
    st.session_state[_state.MAP_SELECTION] = list(dict.fromkeys(ids))


def _numbers(values: object) -> list[float]:
    """Finite floats from a browser's list (ValueError for anything else)."""
    out = [float(v) for v in values]  # type: ignore[attr-defined]
    if not all(np.isfinite(out)):
        raise ValueError("not finite")
    return out


def _pair(values: object) -> tuple[float, float]:
    """Two finite floats, in increasing order."""
    a, b = sorted(_numbers(values))
    return a, b


def open_under_cursor(frame: pd.DataFrame, at: tuple[float, float], unit: tuple[float, float]) -> None:
    """Open the object nearest to a click among ALL objects of the map (not only the hover sample), if it lies within
    CLICK_PX screen pixels; say what opened when it is not right under the cursor, and when nothing is near."""
    found = render.nearest_point(frame, at, unit)
    if found is None or found[1] > CLICK_PX:
        st.session_state[MAP_NOTICE] = f"No object within {CLICK_PX} px of your click: click on a point, or zoom in."
        return
    object_id, px = found
    if px > UNDER_CURSOR_PX:
        st.session_state[_state.OPENED_NOTICE] = (
            f"Opened {object_id}, the object nearest to your click ({px:.0f} px away): no object lies right under the "
            "cursor. Zoom in on the map to click dense regions precisely."
        )
    st.session_state[_state.MAP_OPEN] = object_id


# ----------------------------------------------------------------------------------------------- selection
def redshift_label(row: pd.Series) -> str:
    """Id and redshift of a shown object."""
    z = row.get("redshift")
    if z is None or pd.isna(z):
        return str(row["object_id"])
    return f"{row['object_id']} · z={float(z):.4f}"


def selection_section(atlas: Atlas, space: str) -> list[str]:
    """The box/lasso selection: export, clear, and its first thumbnails. Returns the selected ids."""
    selection = list(st.session_state.get(_state.MAP_SELECTION) or [])
    st.subheader(f"Selection: {len(selection):,} objects")
    if not selection:
        st.caption("Box select or Lasso select (buttons above the map, or shift-/alt-drag on it) to select objects.")
        return selection
    export_panel(atlas, pd.DataFrame({"object_id": selection}), name=f"map selection of {space}", key="export_selection")
    if st.button("Clear selection", key="clear_selection", icon=":material/deselect:"):
        st.session_state[_state.MAP_SELECTION] = []
        st.rerun()
    tag_selection(atlas, selection)
    shown = atlas.get_objects(selection[:GALLERY_MAX], ["thumbnail", "redshift"])
    if len(selection) > GALLERY_MAX:
        st.caption(f"Showing the first {GALLERY_MAX} of {len(selection):,}; the export has all of them.")
    card_gallery(frame_cards(shown, redshift_label), key="selection_cards", action_key=_state.MAP_CARD_ACTION,
                 votes=False)
    return selection


def tag_selection(atlas: Atlas, selection: list[str]) -> None:
    """Tag every selected object at once, with a ready tag or a new name (the Rare page's learner reads them too)."""
    cols = st.columns([3, 1.4, 1], vertical_alignment="bottom")
    tag = cols[0].selectbox("Tag the selection as", list(dict.fromkeys(TAG_BUTTONS.values())), key="selection_tag",
                            accept_new_options=True, help="Pick a tag or type a new name (up to 64 characters).")
    if cols[1].button(f"Tag {len(selection):,} objects", key="tag_selection", icon=":material/sell:", disabled=not tag):
        try:
            name = tags.tag_name(tag or "")
        except AtlasError as exc:
            st.error(md_escape(exc))
            return
        added = tags.tag_objects(atlas, selection, name)
        if added:
            st.session_state.setdefault(_state.TAG_UNDO, []).append(("add", tuple(added), name))
        st.toast(md_escape(f"Tagged {len(added):,} objects {tag}" + (f" ({len(selection) - len(added):,} had it already)."
                                                                    if len(added) < len(selection) else ".")),
                 icon=":material/sell:")
    undo_button(atlas, key="selection_undo", container=cols[2])


def more_like_these_section(atlas: Atlas, space: str, selection: list[str]) -> None:
    """'More like these': a positive-unlabelled model on this space, fitted on the selection, ranks the whole atlas."""
    if len(selection) < similar.MIN_POSITIVES:
        return
    st.subheader("More like these")
    st.caption(f"A positive-unlabelled model on {space}, fitted on the {len(selection):,} selected objects, ranks the "
               "whole atlas; the selection itself is left out.")
    if st.button("More like these", key="map_more_like_these", icon=":material/auto_awesome:"):
        try:
            with st.spinner("Ranking the atlas…"):
                ranked = similar.more_like_these(atlas, selection, space, n=MORE_LIKE_THESE_N)
            st.session_state[_state.MAP_MORE_LIKE_THESE] = {"space": space, "seeds": tuple(selection), "ranked": ranked}
        except AtlasError as exc:
            st.info(md_escape(exc))
    result = st.session_state.get(_state.MAP_MORE_LIKE_THESE)
    if not result or result["space"] != space or result["seeds"] != tuple(selection):
        return  # a result for another selection or space is not shown as if it were this one's
    ranked = result["ranked"]
    shown = ranked.merge(atlas.get_objects(ranked["object_id"].tolist(), ["thumbnail", "redshift"]), on="object_id")
    cards = frame_cards(shown, lambda row: f"{redshift_label(row)} · score {row['score']:.2f}")
    card_gallery(cards, key="more_like_these_cards", action_key=_state.MAP_CARD_ACTION, votes=False)
    export_panel(atlas, ranked, name=f"more like the map selection of {space}", key="export_more_like_these")


main()
