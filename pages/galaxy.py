"""Galaxy: cutout, spectrum with lines, metadata, and neighbours in every direction. Deep link `?object=ID`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import neighbours as nb
from backend.imaging import png_bytes, rgb_composite
from backend.spectra import lines_in_range, smooth_spectrum
from backend.store import AtlasError
from pages import _state
from pages._shared import get_atlas, light_objects, md_escape, open_galaxy, tag_bar, thumbnail_grid

atlas = get_atlas()
catalogue = light_objects(atlas)
if catalogue.empty:
    st.info("This atlas has no objects yet: ingest data on the Data page.")
    st.stop()


def current_object() -> str:
    """The object from `?object=ID`, else the last one opened, else the first in the atlas."""
    wanted = st.query_params.get("object") or st.session_state.get(_state.OBJECT_ID) or str(catalogue["object_id"].iloc[0])
    if wanted not in set(catalogue["object_id"]):
        st.warning(f"No object {md_escape(wanted)} in this atlas; showing the first one instead.")
        wanted = str(catalogue["object_id"].iloc[0])
    st.query_params["object"] = wanted
    st.session_state[_state.OBJECT_ID] = wanted
    return wanted


def show(oid: str) -> None:
    """Move this page to another object (same page: a rerun with the new `?object=`, no page switch)."""
    st.session_state[_state.OBJECT_ID] = oid
    st.query_params["object"] = oid
    st.rerun()


object_id = current_object()
with st.sidebar:
    typed = st.text_input("Go to object id", key="goto_id")
    if typed and typed != object_id and st.button("Open", key="goto_button"):
        open_galaxy(typed)

row = atlas.get_objects([object_id]).iloc[0]
survey = row.get("survey")
survey_meta = atlas.surveys().get(survey, {})
st.title(f"Galaxy {md_escape(object_id)}")
tag_bar(atlas, object_id, key="galaxy")

@st.cache_data(show_spinner=False, max_entries=64)
def spectrum_figure(flux: np.ndarray, ivar: np.ndarray, wave: np.ndarray, redshift: float, smooth: int) -> go.Figure:
    """The observed spectrum, smoothed with its 1-sigma band, lines marked at the galaxy's redshift."""
    smoothed, error = smooth_spectrum(flux, ivar, smooth)
    step = max(1, smooth // 3)
    w, s, e = wave[::step], smoothed[::step], error[::step]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=w, y=s + e, mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
    fig.add_trace(
        go.Scatter(x=w, y=s - e, mode="lines", line={"width": 0}, fill="tonexty", fillcolor="rgba(150,150,150,0.3)",
                   name="1σ", hoverinfo="skip")
    )
    fig.add_trace(go.Scatter(x=w, y=s, mode="lines", line={"width": 1, "color": "#4aa3ff"}, name="flux"))
    shapes, notes = [], []
    for name, observed, kind in lines_in_range(redshift, float(wave[0]), float(wave[-1])):
        colour = "#ff6b6b" if kind == "emission" else "#ffd166"
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": observed, "x1": observed, "y0": 0, "y1": 1,
                       "line": {"width": 1, "dash": "dot", "color": colour}})
        notes.append({"x": observed, "y": 1, "xref": "x", "yref": "paper", "text": name, "showarrow": False,
                      "textangle": -90, "yanchor": "top", "font": {"size": 9, "color": colour}})
    fig.update_layout(height=330, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title="observed wavelength (Å)",
                      yaxis_title="flux", title=f"Spectrum (z = {redshift:.4f})", legend={"orientation": "h"},
                      shapes=shapes, annotations=notes)
    return fig


@st.cache_data(show_spinner=False, max_entries=64)
def composite_png(image: np.ndarray, shape: tuple[int, ...], bands: tuple[str, ...]) -> bytes:
    """Legacy Survey style g,r,z composite of a cutout, as a 256 px PNG."""
    cube = np.asarray(image, dtype=np.float32).reshape(shape)
    return png_bytes(rgb_composite(cube, list(bands)), size=256)


def _fmt(value: object) -> str:
    """A metadata value for the table: floats to 5 significant digits, empty for missing."""
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.6g}"
    return "" if value is None else str(value)


left, middle = st.columns([1, 2])
with left:
    image = row.get("image")
    if image is not None and len(image):
        bands = tuple(survey_meta.get("bands", []))
        png = composite_png(np.asarray(image), tuple(int(s) for s in row["image_shape"]), bands)
        st.image(png, caption=md_escape(f"{survey} {''.join(bands)} composite"))
    else:
        st.caption("No cutout for this object.")
    meta = pd.DataFrame({"column": [k for k in catalogue.columns if k in row.index]})
    meta["value"] = [_fmt(row[k]) for k in meta["column"]]
    st.dataframe(meta, hide_index=True, width="stretch", key="metadata")  # data as data: never Markdown


with middle:
    flux, ivar = row.get("spectrum_flux"), row.get("spectrum_ivar")
    wave = atlas.wavelength(survey) if survey else None
    if flux is not None and len(flux) and wave is not None and len(wave) == len(flux):
        smooth = st.slider("Smoothing (pixels, inverse-variance weighted)", 1, 51, 9, step=2, key="smooth")
        z = float(row["redshift"]) if pd.notna(row.get("redshift")) else 0.0
        st.plotly_chart(spectrum_figure(np.asarray(flux), np.asarray(ivar), wave, z, smooth), key="spectrum")
    else:
        st.caption("No spectrum for this object.")

st.divider()
st.subheader("Neighbours")
directions = nb.directions(atlas, object_id)
if directions.empty:
    st.info("No embedding space holds this object yet: run an embedding job (Jobs page).")
    st.stop()
clash = directions["direction"].duplicated(keep=False)
directions["label"] = [
    f"{d} · {g or (s if isinstance(s, str) else '+'.join(s))}" if c else d
    for d, s, g, c in zip(directions["direction"], directions["space"], directions["group"], clash, strict=True)
]
labels = directions["label"].tolist()
direction = st.segmented_control(
    "Direction", labels, default=labels[0], key="direction", format_func=lambda label: label.replace("->", "→")
) or labels[0]
if direction not in labels:
    direction = labels[0]
controls = st.columns(4)
k = controls[0].number_input("How many", 4, 48, 12, step=4, key="k")
same_source = controls[1].number_input("Drop same source within (arcsec)", 0.0, 60.0, 1.0, key="same_source")

with st.expander("Filters"):
    z_all = catalogue["redshift"].dropna()
    z_lo, z_hi = (float(z_all.min()), float(z_all.max())) if len(z_all) else (0.0, 1.0)
    z_hi = max(z_hi, z_lo + 1e-3)
    z_range = st.slider("Redshift range", z_lo, z_hi, (z_lo, z_hi), key="z_range")
    conditions = st.text_input(
        "Column conditions", key="conditions", placeholder="e.g. morphology = 'spiral' AND split = 'test'",
        help="A SQL predicate over the objects' columns, applied before the search.",
    )

choice = directions.set_index("label").loc[direction]
space, target = choice["space"], choice["target_space"]
try:
    found = nb.neighbours(
        atlas, object_id, space=space, target_space=target, k=int(k), where=conditions or None,
        z_range=None if tuple(z_range) == (z_lo, z_hi) else tuple(z_range),
        exclude_same_source_arcsec=float(same_source) or None,
    )
except AtlasError as exc:  # a bad filter or a missing vector is the user's to fix, not a traceback
    st.error(f"Neighbour search failed: {md_escape(exc)}")
    st.stop()

query = space if isinstance(space, str) else " + ".join(space)
st.caption(md_escape(f"{direction}: query {query} against {target}, {len(found)} neighbours."))
if target.endswith("__spectrum") and wave is not None and len(found):
    rows = atlas.get_objects(found["object_id"].tolist(), columns=["spectrum_flux", "spectrum_ivar", "redshift"])
    fig = go.Figure()
    for i, (_, r) in enumerate(rows.iterrows()):
        if r["spectrum_flux"] is None or not len(r["spectrum_flux"]):
            continue
        s, _ = smooth_spectrum(np.asarray(r["spectrum_flux"]), np.asarray(r["spectrum_ivar"]), 15)
        s = s[::5]
        scale = np.nanpercentile(np.abs(s), 95) or 1.0
        fig.add_trace(go.Scatter(x=wave[::5], y=s / scale + i, mode="lines", line={"width": 1},
                                   name=f"{r['object_id']} z={r['redshift']:.3f}"))
    fig.update_layout(title="Neighbour spectra (normalised, offset)", height=120 + 40 * len(rows),
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, showlegend=True, yaxis={"showticklabels": False},
                      xaxis_title="observed wavelength (Å)")
    st.plotly_chart(fig, key="neighbour_spectra")



def neighbour_label(n: pd.Series) -> str:
    """Id, similarity and redshift of one neighbour."""
    z_text = f"z={n['redshift']:.3f}" if pd.notna(n.get("redshift")) else ""
    return f"{n['object_id']} · sim {n['similarity']:.3f} {z_text}"


def neighbour_actions(n: pd.Series) -> None:
    """Open a neighbour on this page."""
    if st.button("Open", key=f"nb_{n['object_id']}", width="stretch"):
        show(str(n["object_id"]))


thumbnail_grid(found, label=neighbour_label, actions=neighbour_actions,
               empty="No neighbour matches these filters: widen the redshift range or loosen the column conditions.")
