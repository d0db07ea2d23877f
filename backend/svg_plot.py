"""Static SVG plots written with numpy: axes with round ticks, curves, and one line plot.

An SVG is an <img> to the browser: a new tab pays ~0.1 s for its first image, against ~1.6 s for its first Vega-Lite
chart (st.line_chart) and ~3 s for its first Plotly chart on the 2-core box. The Galaxy page's spectra
(backend/spectrum_svg.py) and the Rare page's found-vs-inspected curve are drawn with these.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np

FOREGROUND, GRID, FLUX = "#fafafa", "#31333f", "#4aa3ff"  # on Streamlit's dark theme
WIDTH = 600  # px: about a wide page's half, so text is drawn near its size
MARKERS = 60  # a line plot of this many points or fewer marks each point
LABEL_FONT = 10  # px; a glyph is at most ~0.62 of it wide in the sans-serif fonts the browser picks


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


def path_data(xs: np.ndarray, ys: np.ndarray) -> str:
    """Path data (in tenths of a pixel: draw it with `scale(0.1)`) through the points, broken where a value is not
    finite."""
    ok = np.isfinite(xs) & np.isfinite(ys)
    return "".join(f"M{_points(xs[a:b], ys[a:b])}" for a, b in _runs(ok))


def band_data(xs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> str:
    """Closed path data (tenths of a pixel) of the area between two curves, one per run of finite values."""
    ok = np.isfinite(xs) & np.isfinite(lo) & np.isfinite(hi)
    return "".join(f"M{_points(np.concatenate([xs[a:b], xs[a:b][::-1]]), np.concatenate([hi[a:b], lo[a:b][::-1]]))}Z"
                   for a, b in _runs(ok))


def curve(d: str, clip: str, style: str, *, cls: str = "") -> str:
    """A path in tenths of a pixel, clipped to the plot area."""
    tag = f' class="{cls}"' if cls else ""
    return f'<g clip-path="url(#{clip})"><path{tag} transform="scale(0.1)" d="{d}" {style}/></g>'


def clip_path(box: Box, name: str) -> str:
    """A clip path named `name` around the plot area."""
    return f'<clipPath id="{name}"><rect x="{box.left}" y="{box.top}" width="{box.width}" height="{box.height}"/></clipPath>'


def axes(box: Box, xlabel: str, ylabel: str, *, y_ticks: bool = True, integer: bool = False) -> list[str]:
    """Frame, grid, tick labels and axis titles (`integer`: whole-number ticks only)."""
    out = [f'<rect x="{box.left}" y="{box.top}" width="{box.width}" height="{box.height}" fill="none" stroke="{GRID}"/>']
    bottom = box.top + box.height

    def ticks(lo: float, hi: float, count: int) -> list[float]:
        return [v for v in nice_ticks(lo, hi, count) if not integer or float(v).is_integer()]

    for v in ticks(box.x0, box.x1, 8):
        x = float(box.px(v))
        out.append(f'<line x1="{x:.1f}" y1="{box.top}" x2="{x:.1f}" y2="{bottom}" stroke="{GRID}" stroke-width="0.6"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">{_fmt(v)}</text>')
    if y_ticks:
        for v in ticks(box.y0, box.y1, 5):
            y = float(box.py(v))
            out.append(f'<line x1="{box.left}" y1="{y:.1f}" x2="{box.left + box.width}" y2="{y:.1f}" stroke="{GRID}" stroke-width="0.6"/>')
            out.append(f'<text x="{box.left - 4}" y="{y + 3:.1f}" text-anchor="end" class="tick">{_fmt(v)}</text>')
    out.append(f'<text x="{box.left + box.width / 2}" y="{bottom + 32}" text-anchor="middle" class="axis">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text transform="translate(12,{box.top + box.height / 2}) rotate(-90)" text-anchor="middle" '
                   f'class="axis">{escape(ylabel)}</text>')
    return out


def svg(height: int, body: list[str], title: str) -> str:
    """The whole SVG document, WIDTH wide, with its title drawn at the top left."""
    style = (f"text{{font-family:'Source Sans Pro',sans-serif;fill:{FOREGROUND}}}.tick{{font-size:10px}}"
             f".axis{{font-size:12px}}.title{{font-size:14px}}.line{{font-size:{LABEL_FONT}px}}.key{{font-size:10px}}")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">'
            f"<title>{escape(title)}</title><style>{style}</style>"
            f'<text x="8" y="18" class="title">{escape(title)}</text>{"".join(body)}</svg>')


def data_range(*curves: np.ndarray) -> tuple[float, float]:
    """The finite values' range with 5% padding (0-1 when there are none)."""
    values = np.concatenate([np.asarray(c, dtype=np.float64).ravel() for c in curves])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * (hi - lo) or 1.0
    return lo - pad, hi + pad


def line_svg(x: np.ndarray, y: np.ndarray, *, title: str, xlabel: str, ylabel: str, height: int = 220,
             integer: bool = False) -> str:
    """One curve y(x) with axes and round ticks (`integer`: counts, whole-number ticks only)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x0, x1 = (float(np.nanmin(x)), float(np.nanmax(x))) if np.isfinite(x).any() else (0.0, 1.0)
    x0, x1 = (x0, x1) if x1 > x0 else (x0 - 0.5, x0 + 0.5)  # one point: centred
    y0, y1 = data_range(y)
    box = Box(56.0, 30.0, WIDTH - 72.0, height - 76.0, x0, x1, y0, y1)
    px, py = box.px(x), box.py(y)
    body = [clip_path(box, "line"), *axes(box, xlabel, ylabel, integer=integer),
            curve(path_data(px, py), "line", f'fill="none" stroke="{FLUX}" stroke-width="20"', cls="curve")]
    if len(x) <= MARKERS:  # few points: each one drawn, so a single point shows
        body += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{FLUX}" class="point"/>'
                 for a, b in zip(px.tolist(), py.tolist(), strict=True) if np.isfinite(a) and np.isfinite(b)]
    return svg(height, body, title)
