"""Spectra as static SVG: a galaxy's spectrum with its lines, and its neighbours' spectra over it.

An SVG is an <img> to the browser; a Plotly chart costs every new tab ~2.4 s (its 4.7 MB script) and every redraw
~0.4 s of script on the 2-core box, and matplotlib ~0.3 s of server time a figure. Written here in a few
milliseconds with numpy; the Galaxy page draws these by default and Plotly only when asked to zoom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

from backend.spectra import label_levels, lines_in_range, rest_frame, smooth_spectrum

FOREGROUND, GRID, BAND, QUERY = "#fafafa", "#31333f", "#969696", "#a0a0a0"  # on Streamlit's dark theme
FLUX, EMISSION, ABSORPTION = "#4aa3ff", "#ff6b6b", "#ffd166"
PALETTE = ("#83c9ff", "#ff8c8c", "#7defa1", "#ffd16a", "#d5dae5", "#ff6692", "#b6e880", "#ff97ff", "#fecb52", "#00cc96")
WIDTH = 600  # px: about the Galaxy page's spectrum column on a laptop, so text is drawn near its size
LABEL_FONT = 10  # px; a glyph is at most ~0.62 of it wide in the sans-serif fonts the browser picks


@dataclass(frozen=True)
class Neighbour:
    """One neighbour's spectrum for the overlay."""

    object_id: str
    redshift: float | None
    flux: np.ndarray
    ivar: np.ndarray


@dataclass(frozen=True)
class Box:
    """The plot area in pixels and the data range it shows."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x: np.ndarray | float) -> np.ndarray:
        return self.left + (np.asarray(x, dtype=np.float64) - self.x0) / ((self.x1 - self.x0) or 1.0) * self.width

    def py(self, y: np.ndarray | float) -> np.ndarray:
        return self.top + (self.y1 - np.asarray(y, dtype=np.float64)) / ((self.y1 - self.y0) or 1.0) * self.height


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) inside [lo, hi], about `count` of them."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return [float(lo)] if np.isfinite(lo) else []
    raw = (hi - lo) / max(count, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    decimals = max(0, -int(np.floor(np.log10(step))))
    first, last = int(np.ceil(lo / step - 1e-9)), int(np.floor(hi / step + 1e-9))
    return [round(k * step, decimals) for k in range(first, last + 1)]


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    """Points in tenths of a pixel, "x y x y ...": after an M, SVG reads further pairs as line-tos."""
    pairs = np.rint(np.column_stack([xs, ys]) * 10).astype(np.int64)
    return " ".join(map(str, pairs.ravel().tolist()))


def _path(xs: np.ndarray, ys: np.ndarray) -> str:
    """Path data (in tenths of a pixel: draw it with `scale(0.1)`) through the points, broken where a value is not
    finite."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    return "".join(f"M{_points(xs[a:b], ys[a:b])}" for a, b in _runs(ok))


def _band(xs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> str:
    """Closed path data (tenths of a pixel) of the area between two curves, one per run of finite values."""
    ok = np.isfinite(xs) & np.isfinite(lo) & np.isfinite(hi)
    return "".join(f"M{_points(np.concatenate([xs[a:b], xs[a:b][::-1]]), np.concatenate([hi[a:b], lo[a:b][::-1]]))}Z"
                   for a, b in _runs(ok))


def _curve(d: str, clip: str, style: str, *, cls: str = "") -> str:
    """A path in tenths of a pixel, clipped to the plot area."""
    tag = f' class="{cls}"' if cls else ""
    return f'<g clip-path="url(#{clip})"><path{tag} transform="scale(0.1)" d="{d}" {style}/></g>'


def _axes(box: Box, xlabel: str, ylabel: str, *, y_ticks: bool = True) -> list[str]:
    """Frame, grid, tick labels and axis titles."""
    out = [f'<rect x="{box.left}" y="{box.top}" width="{box.width}" height="{box.height}" fill="none" stroke="{GRID}"/>']
    bottom = box.top + box.height
    for v in nice_ticks(box.x0, box.x1, 8):
        x = float(box.px(v))
        out.append(f'<line x1="{x:.1f}" y1="{box.top}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID}" stroke-width="0.6"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">{_fmt(v)}</text>')
    if y_ticks:
        for v in nice_ticks(box.y0, box.y1, 5):
            y = float(box.py(v))
            out.append(f'<line x1="{box.left}" y1="{y:.1f}" x2="{box.left + box.width}" y2="{y:.1f}" stroke="{GRID}" stroke-width="0.6"/>')
            out.append(f'<text x="{box.left - 4}" y="{y + 3:.1f}" text-anchor="end" class="tick">{_fmt(v)}</text>')
    out.append(f'<text x="{box.left + box.width / 2}" y="{bottom + 32}" text-anchor="middle" class="axis">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(12,{box.top + box.height / 2}) rotate(-90)" text-anchor="middle" '
                   f'class="axis">{escape(ylabel)}</text>')
    return out


def _svg(height: int, body: list[str], title: str) -> str:
    style = (f"text{{font-family:'Source Sans Pro',sans-serif;fill:{FOREGROUND}}}.tick{{font-size:10px}}"
             f".axis{{font-size:12px}}.title{{font-size:14px}}.line{{font-size:{LABEL_FONT}px}}.key{{font-size:10px}}")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">'
            f"<title>{escape(title)}</title><style>{style}</style>"
            f'<text x="8" y="18" class="title">{escape(title)}</text>{"".join(body)}</svg>')


def _range(*curves: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in curves])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 1.0
    return lo - pad, hi + pad


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
    y0, y1 = _range(s)
    box = Box(64.0, 34.0, WIDTH - 76.0, height - 80.0, float(x[0]), float(x[-1]), y0, y1)
    clip = f'<clipPath id="plot"><rect x="{box.left}" y="{box.top}" width="{box.width}" height="{box.height}"/></clipPath>'
    frame = "rest-frame" if rest else "observed"
    body = [clip, *_axes(box, f"{frame} wavelength (Å)", f"flux ({unit})")]
    px = box.px(x)
    body.append(_curve(_band(px, box.py(s - e), box.py(s + e)), "plot", f'fill="{BAND}" fill-opacity="0.3"'))
    body.append(_curve(_path(px, box.py(s)), "plot", f'fill="none" stroke="{FLUX}" stroke-width="10"', cls="flux"))
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
    return _svg(height, body, f"Spectrum (z = {redshift:.4f})")


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
    body = [f'<clipPath id="nb"><rect x="{box.left}" y="{box.top}" width="{box.width}" height="{box.height}"/></clipPath>',
            *_axes(box, "observed wavelength (Å)", "", y_ticks=False)]
    px = box.px(x)
    step = float(box.py(0.0) - box.py(1.0))  # one offset, in pixels
    if mine is not None:  # drawn once, used at every offset
        body.append(f'<defs><path id="query" transform="scale(0.1)" d="{_path(px, box.py(mine))}" fill="none" '
                    f'stroke="{QUERY}" stroke-opacity="0.6" stroke-width="10"/></defs>')
    for i, n in enumerate(drawn):
        if mine is not None:
            body.append(f'<g clip-path="url(#nb)"><use href="#query" class="query" transform="translate(0,{-step * i:.1f})"/></g>')
        colour = PALETTE[i % len(PALETTE)]
        curve = normalised(n.flux, n.ivar)
        body.append(_curve(_path(px, box.py(curve + i)), "nb", f'fill="none" stroke="{colour}" stroke-width="10"',
                           cls="neighbour"))
        z_text = f" z={n.redshift:.3f}" if n.redshift is not None and np.isfinite(n.redshift) else ""
        tail = curve[-20:][np.isfinite(curve[-20:])]  # the label sits where the curve ends
        level = i + (float(np.median(tail)) if len(tail) else 0.0)
        body.append(f'<text x="{box.left + box.width + 6}" y="{float(box.py(level)) + 4:.1f}" class="key" '
                    f'style="fill:{colour}">{escape(f"{n.object_id}{z_text}")}</text>')
    if mine is not None and drawn:
        body.append(f'<line x1="{box.left}" y1="33" x2="{box.left + 20}" y2="33" stroke="{QUERY}" stroke-width="2"/>'
                    f'<text x="{box.left + 24}" y="37" class="key">'
                    f"{escape(object_id)} (this galaxy)</text>")
    return _svg(height, body, f"Neighbour spectra (normalised, offset) over {object_id}'s in grey")
