"""Find objects: by exact object id, a name-like id (`sdss 42` finds `sdss-00042`), or a cone around RA/Dec.

Positions are read with astropy.coordinates in degrees (`226.4427 12.3556`) or sexagesimal
(`15:05:46.26 +12:21:20.2`, `15h05m46.26s +12d21m20.2s`); a cone search first cuts a RA/Dec box in
the store (handling the RA wrap and the poles), then keeps objects within the exact angular radius.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend import schema
from backend.store import (
    Atlas,
    AtlasError,
    where_all,
    where_any,
    where_at_least,
    where_at_most,
    where_between,
    where_in,
)

DEFAULT_RADIUS_ARCSEC = 10.0
FIND_COLUMNS = ("object_id", "survey", "ra", "dec", "redshift")
_NUMBER = r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
_DEGREES_PAIR = re.compile(rf"^\s*({_NUMBER})\s*[,;\s]\s*({_NUMBER})\s*(?:deg|d)?\s*$")
_NAME_LIKE = re.compile(r"^\s*([A-Za-z][A-Za-z_\- ]*?)[\s_\-]*0*(\d+)\s*$")


@dataclass
class FindResult:
    """What a query found: `kind` is id | name | cone | none; `objects` is best first; `message` says what happened."""

    kind: str
    objects: pd.DataFrame
    message: str
    centre: tuple[float, float] | None = field(default=None)


def parse_position(text: str) -> tuple[float, float] | None:
    """RA, Dec in degrees (ICRS) from degrees or sexagesimal text; None when the text is not a position."""
    text = text.strip()
    if not text:
        return None
    pair = _DEGREES_PAIR.match(text)
    if pair:
        ra, dec = float(pair.group(1)), float(pair.group(2))
        return (ra % 360.0, dec) if -90.0 <= dec <= 90.0 and -360.0 <= ra <= 360.0 else None
    if not re.search(r"\d", text) or not re.search(r"[:hHdD°'\"ms\s]", text):
        return None
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    cleaned = text.replace(",", " ")
    try:
        coord = SkyCoord(cleaned, unit=(u.hourangle, u.deg), frame="icrs")
    except (ValueError, TypeError, u.UnitsError):
        return None
    return float(coord.ra.deg), float(coord.dec.deg)


def separation_arcsec(ra0: float, dec0: float, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Angular separation (arcsec) of each (ra, dec) from (ra0, dec0), all in degrees (Vincenty formula)."""
    from astropy.coordinates import angular_separation

    sep = angular_separation(np.radians(ra0), np.radians(dec0), np.radians(np.asarray(ra, float)), np.radians(np.asarray(dec, float)))
    return np.degrees(np.asarray(sep)) * 3600.0


def _box_where(ra: float, dec: float, radius_deg: float) -> str:
    """A SQL RA/Dec box containing the cone (RA range widened by 1/cos(dec); wraps at 0/360; all RA near a pole)."""
    dec_lo, dec_hi = max(-90.0, dec - radius_deg), min(90.0, dec + radius_deg)
    where = where_between("dec", dec_lo, dec_hi)
    if dec_lo <= -90.0 or dec_hi >= 90.0:
        return where
    half = float(radius_deg / max(np.cos(np.radians(max(abs(dec_lo), abs(dec_hi)))), 1e-9))
    if half >= 180.0:
        return where
    lo, hi = ra - half, ra + half
    if lo < 0:
        return where_all(where, where_any(where_at_least("ra", lo + 360.0), where_at_most("ra", hi))) or where
    if hi >= 360.0:
        return where_all(where, where_any(where_at_least("ra", lo), where_at_most("ra", hi - 360.0))) or where
    return where_all(where, where_between("ra", lo, hi)) or where


def cone_search(
    atlas: Atlas, ra: float, dec: float, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC, *, limit: int = 100,
    columns: tuple[str, ...] = FIND_COLUMNS,
) -> pd.DataFrame:
    """Objects within `radius_arcsec` of (ra, dec) degrees, nearest first, with a `separation_arcsec` column."""
    if radius_arcsec <= 0:
        raise AtlasError(f"a cone search needs a positive radius, not {radius_arcsec} arcsec")
    if not -90.0 <= dec <= 90.0:
        raise AtlasError(f"Dec {dec} is outside -90..+90 degrees")
    frame = atlas.objects(list(columns), where=_box_where(float(ra) % 360.0, float(dec), radius_arcsec / 3600.0))
    if frame.empty:
        return frame.assign(separation_arcsec=pd.Series(dtype=float))
    frame["separation_arcsec"] = separation_arcsec(ra, dec, frame["ra"].to_numpy(), frame["dec"].to_numpy())
    inside = frame[frame["separation_arcsec"] <= radius_arcsec]
    return inside.sort_values("separation_arcsec").head(limit).reset_index(drop=True)


def _squash(prefix: str) -> str:
    return re.sub(r"[\s_\-]+", "", prefix).lower()


def _name_key(object_id: str) -> tuple[str, int] | None:
    """(letters prefix, number) of an id such as `sdss-00042` or `NGC 4565`; None for other shapes."""
    m = _NAME_LIKE.match(object_id)
    return (_squash(m.group(1)), int(m.group(2))) if m else None


def name_matches(atlas: Atlas, text: str, *, limit: int = 50, columns: tuple[str, ...] = FIND_COLUMNS) -> pd.DataFrame:
    """Objects whose id matches a name-like query: prefix + number ignoring case, separators and zero padding,
    else ids containing the text (case-insensitive)."""
    text = text.strip()
    if not text or not atlas.has_table(schema.OBJECTS):
        return pd.DataFrame(columns=list(columns))
    ids = atlas.objects(["object_id"])["object_id"].astype(str)
    named = _NAME_LIKE.match(text)
    hits = ids[:0]
    if named:
        wanted = (_squash(named.group(1)), int(named.group(2)))
        keys = [_name_key(s) for s in ids]
        hits = ids[[k == wanted for k in keys]]
    if hits.empty:
        hits = ids[ids.str.contains(re.escape(text), case=False, regex=True)]
    hits = hits.head(limit).tolist()
    return atlas.get_objects(hits, [c for c in columns if c != "object_id"]) if hits else pd.DataFrame(columns=list(columns))


def find(atlas: Atlas, query: str, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC, *, limit: int = 50) -> FindResult:
    """Resolve a search box's text: an exact id first, then a position (cone), then a name-like id."""
    query = (query or "").strip()
    if not query:
        return FindResult("none", pd.DataFrame(columns=list(FIND_COLUMNS)), "type an object id, a name or RA Dec")
    cols = [c for c in FIND_COLUMNS if c != "object_id"]
    exact = atlas.get_objects([query], cols)
    if len(exact):
        return FindResult("id", exact, f"object {query}")
    position = parse_position(query)
    if position is not None:
        found = cone_search(atlas, *position, radius_arcsec, limit=limit)
        where = f"RA {position[0]:.6f}°, Dec {position[1]:+.6f}°"
        if found.empty:
            return FindResult("cone", found, f"nothing within {radius_arcsec:g}\" of {where}", position)
        return FindResult("cone", found, f"{len(found)} within {radius_arcsec:g}\" of {where}", position)
    named = name_matches(atlas, query, limit=limit)
    if len(named):
        return FindResult("name", named, f"{len(named)} object(s) whose id matches {query!r}")
    return FindResult("none", named, f"no object id matches {query!r}, and it is not a position (RA Dec)")


def nearest_in_plane(frame: pd.DataFrame, x: float, y: float, *, xcol: str = "x", ycol: str = "y") -> tuple[str, float] | None:
    """The object nearest to (x, y) among ALL rows of a map frame, and its distance in data units."""
    if frame.empty:
        return None
    xs, ys = frame[xcol].to_numpy(np.float64), frame[ycol].to_numpy(np.float64)
    d2 = (xs - x) ** 2 + (ys - y) ** 2
    i = int(np.nanargmin(d2))
    return str(frame["object_id"].iloc[i]), float(np.sqrt(d2[i]))


def ids_known(atlas: Atlas, ids: list[str]) -> tuple[list[str], list[str]]:
    """Split ids into (present in the atlas, in the given order; absent)."""
    if not ids:
        return [], []
    present = set(atlas.objects(["object_id"], where=where_in("object_id", ids))["object_id"])
    return [i for i in ids if i in present], [i for i in ids if i not in present]
