"""Sky cross-match of incoming positions against the objects already in an atlas (astropy SkyCoord)."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from backend import schema
from backend.store import Atlas

from .positions import valid_mask


class SkyMatcher:
    """Nearest existing atlas object within `radius_arcsec` of each position (None where there is none)."""

    def __init__(self, atlas: Atlas, radius_arcsec: float = 1.0) -> None:
        self.radius = float(radius_arcsec) * u.arcsec
        frame = atlas.objects(["object_id", "survey", "ra", "dec"]) if atlas.has_table(schema.OBJECTS) else None
        if frame is None or frame.empty:
            self.ids, self.surveys, self.coords = np.array([], dtype=object), np.array([], dtype=object), None
            return
        frame = frame[valid_mask(frame["ra"].to_numpy(float), frame["dec"].to_numpy(float))]  # rows stored before validation
        self.ids = frame["object_id"].to_numpy(dtype=object)
        self.surveys = frame["survey"].to_numpy(dtype=object)
        self.coords = SkyCoord(frame["ra"].to_numpy(float) * u.deg, frame["dec"].to_numpy(float) * u.deg) if len(frame) else None

    def match(self, ra: np.ndarray, dec: np.ndarray) -> list[tuple[str, str] | None]:
        """(object_id, survey) of the nearest atlas object within the radius, per position (unusable -> None)."""
        ra, dec = np.asarray(ra, float), np.asarray(dec, float)
        out: list[tuple[str, str] | None] = [None] * len(ra)
        ok = valid_mask(ra, dec)
        if self.coords is None or not ok.any():
            return out
        coords = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)
        idx, sep, _ = coords.match_to_catalog_sky(self.coords)
        for pos, j, s in zip(np.flatnonzero(ok), idx, sep, strict=True):
            if s <= self.radius:
                out[pos] = (str(self.ids[j]), str(self.surveys[j]))
        return out
