"""Map rendering with datashader: every point into an RGBA image with its extent, plus selection helpers.

The app draws `render(...)` as a background image layer (all points, any count) and `sample_points`
as the clickable layer; lasso/box selections go through `points_in_polygon` / `points_in_box`, which
return ids of ALL points inside, not only the sampled ones.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

CATEGORY_PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363",
]
DOMINANT_GREY, OTHER_COLOUR = "#9a9a9a", "#5c5c5c"
DOMINANT_SHARE = 0.5  # a category this common hides the others unless drawn grey, underneath
CATEGORICAL_CODES = ("cluster", "cluster_rank")  # integer columns that are labels, not quantities
OTHER, NONE_LABEL = "other", "(none)"
DENSITY_CMAP = ["#e8eef7", "#9ecae1", "#4292c6", "#08519c", "#08306b"]
CONTINUOUS_CMAP = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]  # viridis stops


@dataclass
class Rendered:
    """An RGBA image (H x W x 4, uint8, row 0 = top) and the data extent it covers."""

    image: np.ndarray
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    legend: dict[str, str] | None = None  # category -> colour, for categorical colouring
    value_range: tuple[float, float] | None = None  # for continuous colouring

    def png(self) -> bytes:
        """The image as PNG bytes."""
        buf = io.BytesIO()
        Image.fromarray(self.image, "RGBA").save(buf, format="PNG")
        return buf.getvalue()


def extent(frame: pd.DataFrame, x: str = "x", y: str = "y", pad: float = 0.02) -> tuple[tuple[float, float], tuple[float, float]]:
    """The padded bounding box of a frame's points."""
    xs, ys = frame[x].to_numpy(), frame[y].to_numpy()
    (x0, x1), (y0, y1) = (np.nanmin(xs), np.nanmax(xs)), (np.nanmin(ys), np.nanmax(ys))
    dx, dy = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    return (float(x0 - pad * dx), float(x1 + pad * dx)), (float(y0 - pad * dy), float(y1 + pad * dy))


def is_categorical(series: pd.Series, name: str = "") -> bool:
    """Strings, booleans, and integer codes such as `cluster` are categories; other numbers are continuous."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return True
    return name in CATEGORICAL_CODES


def category_labels(series: pd.Series, name: str = "") -> pd.Series:
    """Category labels as text: missing or empty values read `(none)`, cluster -1 reads `noise`."""
    if pd.api.types.is_float_dtype(series) and name in CATEGORICAL_CODES:
        series = series.astype("Int64")
    text = series.astype("string").fillna(NONE_LABEL).replace("", NONE_LABEL)
    if name in ("cluster", "cluster_rank"):
        text = text.replace("-1", "noise")
    return text.astype(object)


def category_colours(values: pd.Series, max_categories: int = 20) -> dict[str, str]:
    """Legend of a categorical colouring, rarest-last order kept readable: the most common categories in palette
    colours, the rest as `other`; a value held by at least half of the objects is drawn grey (listed last)."""
    counts = values.value_counts()
    if counts.empty:
        return {}
    dominant = counts.index[0] if len(counts) > 1 and counts.iloc[0] >= DOMINANT_SHARE * counts.sum() else None
    others = [c for c in counts.index if c != dominant]
    shown = others[: max_categories - 1] if len(others) > max_categories - 1 else others
    legend = {c: CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)] for i, c in enumerate(sorted(shown, key=_natural))}
    if len(shown) < len(others):
        legend[OTHER] = OTHER_COLOUR
    if dominant is not None:
        legend[dominant] = DOMINANT_GREY
    return legend


def _natural(label: str) -> tuple:
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def render(
    frame: pd.DataFrame,
    color: str | None = None,
    *,
    x: str = "x",
    y: str = "y",
    width: int = 800,
    height: int = 600,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    how: str = "eq_hist",
    spread: int = 0,
    max_categories: int = 20,
) -> Rendered:
    """Render all points: density (color=None), or coloured by a categorical or continuous column."""
    import datashader as ds
    import datashader.transfer_functions as tf

    if x_range is None or y_range is None:
        full_x, full_y = extent(frame, x, y)
        x_range, y_range = x_range or full_x, y_range or full_y
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)
    legend = value_range = None
    if color is None:
        agg = canvas.points(frame, x, y, agg=ds.count())
        img = tf.shade(agg, cmap=DENSITY_CMAP, how=how)
    elif is_categorical(frame[color], color):
        values = category_labels(frame[color], color)
        legend = category_colours(values, max_categories)
        values = values.where(values.isin(list(legend)), OTHER)
        cats = list(legend)
        # datashader compiles its numba kernels once per set of category labels (1-2 s each): give it the same
        # generic labels for every column, so one compilation (the app's warm-up) serves every categorical colouring
        generic = [f"c{i}" for i in range(max(max_categories + 1, len(cats)))]
        codes = pd.Categorical(values, categories=cats).codes
        key = {label: legend[cats[i]] if i < len(cats) else "#000000" for i, label in enumerate(generic)}
        data = pd.DataFrame({x: frame[x].to_numpy(), y: frame[y].to_numpy(),
                             "_cat": pd.Categorical.from_codes(codes, categories=generic)})
        dominant = generic[len(cats) - 1] if legend[cats[-1]] == DOMINANT_GREY else None
        rest = data[data["_cat"] != dominant] if dominant is not None else data
        layers = []
        if dominant is not None:  # the common value first, grey, underneath everything else
            agg = canvas.points(data[data["_cat"] == dominant], x, y, agg=ds.count())
            layers.append(tf.shade(agg, cmap=[DOMINANT_GREY, DOMINANT_GREY], how="linear", min_alpha=110))
        if len(rest):
            agg = canvas.points(rest, x, y, agg=ds.count_cat("_cat"))
            layers.append(tf.shade(agg, color_key=key, how=how, min_alpha=200))
        img = tf.stack(*layers) if len(layers) > 1 else layers[0]
    else:
        vals = frame[color].astype("float64")
        data = pd.DataFrame({x: frame[x].to_numpy(), y: frame[y].to_numpy(), "_v": vals.to_numpy()})
        agg = canvas.points(data, x, y, agg=ds.mean("_v"))
        lo, hi = np.nanpercentile(vals, [1, 99]) if vals.notna().any() else (0.0, 1.0)
        value_range = (float(lo), float(hi))
        img = tf.shade(agg, cmap=CONTINUOUS_CMAP, how="linear", span=value_range)
    if spread:
        img = tf.spread(img, px=spread)
    rgba = img.to_numpy().view(np.uint8).reshape(height, width, 4)[::-1].copy()  # datashader rows run bottom-up
    x_span, y_span = (float(x_range[0]), float(x_range[1])), (float(y_range[0]), float(y_range[1]))
    return Rendered(rgba, x_span, y_span, legend, value_range)


def sample_points(
    frame: pd.DataFrame,
    cap: int = 5_000,
    *,
    x: str = "x",
    y: str = "y",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    seed: int = 0,
    keep: list[str] | None = None,
) -> pd.DataFrame:
    """At most `cap` points (with object_id) inside the extent, for the clickable layer; `keep` ids always included."""
    inside = frame
    if x_range is not None and y_range is not None:
        inside = frame[frame[x].between(*x_range) & frame[y].between(*y_range)]
    if len(inside) <= cap:
        return inside.reset_index(drop=True)
    chosen = inside.sample(n=cap, random_state=seed)
    if keep:
        extra = inside[inside["object_id"].isin(set(keep)) & ~inside.index.isin(chosen.index)]
        chosen = pd.concat([chosen, extra])
    return chosen.reset_index(drop=True)


def points_in_polygon(frame: pd.DataFrame, polygon_xy: np.ndarray | list, *, x: str = "x", y: str = "y") -> list[str]:
    """Ids of ALL points inside a lasso polygon ([(x, y), ...] in data coordinates)."""
    poly = np.asarray(polygon_xy, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise ValueError(f"a lasso needs at least 3 (x, y) vertices, got shape {poly.shape}")
    (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
    box = frame[frame[x].between(x0, x1) & frame[y].between(y0, y1)]
    if box.empty:
        return []
    inside = _inside(box[x].to_numpy(np.float64), box[y].to_numpy(np.float64), poly)
    return list(box["object_id"].to_numpy()[inside])


def _inside(px: np.ndarray, py: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd ray casting, vectorised over points (one pass per polygon edge)."""
    inside = np.zeros(len(px), bool)
    xj, yj = poly[-1]
    for xi, yi in poly:
        crosses = (yi > py) != (yj > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (py - yi) / (yj - yi) + xi
        inside ^= crosses & (px < x_cross)
        xj, yj = xi, yi
    return inside


def points_in_box(frame: pd.DataFrame, x_range: tuple[float, float], y_range: tuple[float, float], *, x: str = "x", y: str = "y") -> list[str]:
    """Ids of ALL points inside a box selection."""
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    return list(frame.loc[frame[x].between(x0, x1) & frame[y].between(y0, y1), "object_id"])


def nearest_point(frame: pd.DataFrame, at: tuple[float, float], unit: tuple[float, float], *, x: str = "x",
                  y: str = "y") -> tuple[str, float] | None:
    """The object nearest to `at` among ALL points, and its distance in `unit`s (data units per pixel along x and y:
    the distance is in screen pixels); None for an empty frame."""
    if frame.empty:
        return None
    ux, uy = (abs(float(u)) or 1.0 for u in unit)
    dx = (frame[x].to_numpy(np.float64) - float(at[0])) / ux
    dy = (frame[y].to_numpy(np.float64) - float(at[1])) / uy
    dist = np.hypot(dx, dy)
    i = int(np.nanargmin(dist)) if np.isfinite(dist).any() else -1
    if i < 0:
        return None
    return str(frame["object_id"].iloc[i]), float(dist[i])
