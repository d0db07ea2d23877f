"""The Galaxy page's cached figures: the cutout composite, and the Plotly spectra drawn when Zoom is on. Defined
here, not in the page file, so that a page run does not define the cached functions again (Streamlit keys each by
its source on every definition)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend.imaging import png_bytes, rgb_composite, row_cube, with_scale_bar
from backend.spectra import label_levels, lines_in_range, rest_frame, smooth_spectrum
from backend.spectrum_svg import normalised
from pages._shared import fast_figure, plot_text


@st.cache_resource(show_spinner=False, max_entries=64)
def spectrum_figure(
    flux: np.ndarray, ivar: np.ndarray, wave: np.ndarray, redshift: float, smooth: int, rest: bool, unit: str
) -> go.Figure:
    """The spectrum, smoothed with its 1-sigma band, lines marked (labels staggered so they do not overlap);
    observed frame, or rest frame at the galaxy's redshift. Shared between sessions: read only."""
    smoothed, error = smooth_spectrum(flux, ivar, smooth)
    step = max(1, smooth // 3)
    x_all = rest_frame(wave, redshift) if rest else np.asarray(wave)
    w, s, e = (np.asarray(a[::step], dtype=np.float32) for a in (x_all, smoothed, error))  # 4-byte binary in transit
    traces = [
        {"type": "scatter", "x": w, "y": s + e, "mode": "lines", "line": {"width": 0}, "showlegend": False,
         "hoverinfo": "skip"},
        {"type": "scatter", "x": w, "y": s - e, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
         "fillcolor": "rgba(150,150,150,0.3)", "name": "1σ", "hoverinfo": "skip"},
        {"type": "scatter", "x": w, "y": s, "mode": "lines", "line": {"width": 1, "color": "#4aa3ff"}, "name": "flux"},
    ]
    shapes, notes = [], []
    found = lines_in_range(redshift, float(wave[0]), float(wave[-1]))
    positions = [observed / (1 + redshift) if rest else observed for _, observed, _ in found]
    rows = label_levels(positions, 0.02 * float(x_all[-1] - x_all[0]))
    for (name, _, kind), x, row in zip(found, positions, rows, strict=True):
        colour = "#ff6b6b" if kind == "emission" else "#ffd166"
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                       "line": {"width": 1, "dash": "dot", "color": colour}})
        notes.append({"x": x, "y": 1 - 0.16 * row, "xref": "x", "yref": "paper", "text": name, "showarrow": False,
                      "textangle": -90, "yanchor": "top", "xanchor": "right", "font": {"size": 10, "color": colour}})
    frame = "rest-frame" if rest else "observed"
    layout = {"height": 360, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
              "xaxis": {"title": {"text": f"{frame} wavelength (Å)"}}, "yaxis": {"title": {"text": f"flux ({unit})"}},
              "title": {"text": f"Spectrum (z = {redshift:.4f})"}, "legend": {"orientation": "h"},
              "shapes": shapes, "annotations": notes}
    return fast_figure(traces, layout)


@st.cache_data(show_spinner=False, max_entries=64)
def composite_png(image: np.ndarray, shape: tuple[int, ...], bands: tuple[str, ...], pixel_scale: float | None) -> bytes:
    """Legacy Survey style g,r,z composite of a cutout, as a 256 px PNG (with a scale bar when the scale is known)."""
    rgb = rgb_composite(row_cube({"image": image, "image_shape": shape}), list(bands))
    return with_scale_bar(rgb, pixel_scale, 256) if pixel_scale else png_bytes(rgb, size=256, compress_level=1)


def neighbour_spectra(rows: pd.DataFrame, flux: np.ndarray | None, ivar: np.ndarray | None, wave: np.ndarray, oid: str) -> go.Figure:
    """Each neighbour's spectrum (normalised, offset) with this galaxy's spectrum drawn behind it in grey."""
    query = normalised(flux, ivar) if flux is not None and len(flux) == len(wave) else None
    x = np.asarray(wave[::5], dtype=np.float32)
    traces = []
    for i, (_, r) in enumerate(rows.iterrows()):
        if r["spectrum_flux"] is None or not len(r["spectrum_flux"]):
            continue
        if query is not None:
            traces.append({"type": "scatter", "x": x, "y": (query + i).astype(np.float32), "mode": "lines",
                           "line": {"width": 1, "color": "rgba(160,160,160,0.6)"}, "name": f"{plot_text(oid)} (this galaxy)",
                           "legendgroup": "query", "showlegend": i == 0, "hoverinfo": "skip"})
        z_text = f" z={r['redshift']:.3f}" if pd.notna(r["redshift"]) else ""
        traces.append({"type": "scatter", "x": x, "mode": "lines", "line": {"width": 1},
                       "y": (normalised(r["spectrum_flux"], r["spectrum_ivar"]) + i).astype(np.float32),
                       "name": f"{plot_text(r['object_id'])}{z_text}"})
    layout = {"title": {"text": f"Neighbour spectra (normalised, offset) over {plot_text(oid)}'s in grey"},
              "height": 120 + 40 * len(rows), "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "showlegend": True,
              "yaxis": {"showticklabels": False}, "xaxis": {"title": {"text": "observed wavelength (Å)"}}}
    return fast_figure(traces, layout)
