"""Spectra as static SVG (backend/svg_plot.py): a galaxy's spectrum with its lines, and its neighbours' spectra over it.

A Plotly chart costs every new tab ~2.4 s (its 4.7 MB script) and every redraw ~0.4 s of script on the 2-core box,
and matplotlib ~0.3 s of server time a figure. Written here in a few milliseconds with numpy; the Galaxy page draws
these by default and Plotly only when asked to zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from backend.spectra import label_levels, lines_in_range, rest_frame, smooth_spectrum
from backend.svg_plot import (
    FLUX,
    LABEL_FONT,
    WIDTH,
    Box,
    axes,
    band_data,
    clip_path,
    curve,
    data_range,
    path_data,
    svg,
)

BAND, QUERY = "#969696", "#a0a0a0"
EMISSION, ABSORPTION = "#ff6b6b", "#ffd166"
PALETTE = ("#83c9ff", "#ff8c8c", "#7defa1", "#ffd16a", "#d5dae5", "#ff6692", "#b6e880", "#ff97ff", "#fecb52", "#00cc96")


@dataclass(frozen=True)
class Neighbour:
    """One neighbour's spectrum for the overlay."""

    object_id: str
    redshift: float | None
    flux: np.ndarray
    ivar: np.ndarray


def spectrum_svg(
    wave: np.ndarray, flux: np.ndarray, ivar: np.ndarray, redshift: float, smooth: int, rest: bool, unit: str
) -> str:
    """The spectrum smoothed (inverse-variance weighted) with its 1-sigma band and the lines in range marked, labels
    staggered over three rows so close lines do not overlap; observed frame, or rest frame at `redshift`."""
    smooth = max(1, min(int(smooth), len(flux)))  # a window longer than the spectrum would lengthen it
    smoothed, error = smooth_spectrum(flux, ivar, smooth)
    step = max(1, smooth // 3)
    x = (rest_frame(wave, redshift) if rest else np.asarray(wave, dtype=np.float64))[::step]
    s, e = smoothed[::step], error[::step]
    height = 330
    y0, y1 = data_range(s)
    box = Box(64.0, 34.0, WIDTH - 76.0, height - 80.0, float(x[0]), float(x[-1]), y0, y1)
    clip = clip_path(box, "plot")
    frame = "rest-frame" if rest else "observed"
    body = [clip, *axes(box, f"{frame} wavelength (Å)", f"flux ({unit})")]
    px = box.px(x)
    body.append(curve(band_data(px, box.py(s - e), box.py(s + e)), "plot", f'fill="{BAND}" fill-opacity="0.3"'))
    body.append(curve(path_data(px, box.py(s)), "plot", f'fill="none" stroke="{FLUX}" stroke-width="10"', cls="flux"))
    found = lines_in_range(redshift, float(wave[0]), float(wave[-1]))
    positions = [observed / (1 + redshift) if rest else observed for _, observed, _ in found]
    gap = (LABEL_FONT + 3) * (box.x1 - box.x0) / box.width  # labels closer than one text height share no row
    rows = label_levels(positions, gap)
    row_step = 0.62 * LABEL_FONT * max((len(name) for name, _, _ in found), default=0) + 6  # the longest label
    for (name, _, kind), pos, row in zip(found, positions, rows, strict=True):
        colour = EMISSION if kind == "emission" else ABSORPTION
        lx, ly = float(box.px(pos)), box.top + 4 + row_step * row
        body.append(f'<line x1="{lx:.1f}" y1="{box.top}" x2="{lx:.1f}" y2="{box.top + box.height}" stroke="{colour}" '
                    'stroke-width="1" stroke-dasharray="2,3"/>')
        body.append(f'<text transform="translate({lx - 2:.1f},{ly:.1f}) rotate(-90)" text-anchor="end" class="line" '
                    f'style="fill:{colour}">{escape(name)}</text>')
    right = box.left + box.width
    body.append(f'<line x1="{right - 130}" y1="14" x2="{right - 110}" y2="14" stroke="{FLUX}" stroke-width="2"/>'
                f'<text x="{right - 106}" y="18" class="key">flux</text>'
                f'<rect x="{right - 60}" y="9" width="20" height="10" fill="{BAND}" fill-opacity="0.3"/>'
                f'<text x="{right - 36}" y="18" class="key">1σ</text>')
    return svg(height, body, f"Spectrum (z = {redshift:.4f})")


def normalised(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """A spectrum smoothed over 15 pixels, every 5th pixel kept, divided by its 95th percentile of |flux|."""
    s, _ = smooth_spectrum(np.asarray(flux), np.asarray(ivar), 15)
    s = s[::5]
    return s / (np.nanpercentile(np.abs(s), 95) or 1.0)


def neighbour_spectra_svg(
    wave: np.ndarray, query: tuple[np.ndarray, np.ndarray] | None, neighbours: Sequence[Neighbour], object_id: str
) -> str:
    """Each neighbour's spectrum (normalised, offset by one per neighbour, labelled with id and redshift) drawn over
    the query galaxy's spectrum in grey at the same offset."""
    x = np.asarray(wave, dtype=np.float64)[::5]
    mine = normalised(*query) if query is not None and len(query[0]) == len(wave) else None
    drawn = [n for n in neighbours if n.flux is not None and len(n.flux) == len(wave)]
    height = 110 + 34 * max(len(drawn), 1)
    box = Box(12.0, 44.0, WIDTH - 150.0, height - 88.0, float(x[0]), float(x[-1]), -0.6, max(len(drawn), 1) + 0.4)
    body = [clip_path(box, "nb"),
            *axes(box, "observed wavelength (Å)", "", y_ticks=False)]
    px = box.px(x)
    step = float(box.py(0.0) - box.py(1.0))  # one offset, in pixels
    if mine is not None:  # drawn once, used at every offset
        body.append(f'<defs><path id="query" transform="scale(0.1)" d="{path_data(px, box.py(mine))}" fill="none" '
                    f'stroke="{QUERY}" stroke-opacity="0.6" stroke-width="10"/></defs>')
    for i, n in enumerate(drawn):
        if mine is not None:
            body.append(f'<g clip-path="url(#nb)"><use href="#query" class="query" transform="translate(0,{-step * i:.1f})"/></g>')
        colour = PALETTE[i % len(PALETTE)]
        levels = normalised(n.flux, n.ivar)
        body.append(curve(path_data(px, box.py(levels + i)), "nb", f'fill="none" stroke="{colour}" stroke-width="10"',
                           cls="neighbour"))
        z_text = f" z={n.redshift:.3f}" if n.redshift is not None and np.isfinite(n.redshift) else ""
        tail = levels[-20:][np.isfinite(levels[-20:])]  # the label sits where the curve ends
        level = i + (float(np.median(tail)) if len(tail) else 0.0)
        body.append(f'<text x="{box.left + box.width + 6}" y="{float(box.py(level)) + 4:.1f}" class="key" '
                    f'style="fill:{colour}">{escape(f"{n.object_id}{z_text}")}</text>')
    if mine is not None and drawn:
        body.append(f'<line x1="{box.left}" y1="33" x2="{box.left + 20}" y2="33" stroke="{QUERY}" stroke-width="2"/>'
                    f'<text x="{box.left + 24}" y="37" class="key">'
                    f"{escape(object_id)} (this galaxy)</text>")
    return svg(height, body, f"Neighbour spectra (normalised, offset) over {object_id}'s in grey")
