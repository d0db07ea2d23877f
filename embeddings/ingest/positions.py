"""Sky positions as ingest accepts them: both coordinates finite, 0 <= ra <= 360, -90 <= dec <= 90 (degrees)."""

from __future__ import annotations

import math

import numpy as np


def position_problem(ra: float | None, dec: float | None) -> str | None:
    """Why (ra, dec) is not a usable sky position, or None when it is (or when no position is given at all)."""
    if ra is None and dec is None:
        return None
    if ra is None or dec is None:
        return f"only one coordinate given (ra={ra}, dec={dec})"
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return f"ra/dec not finite: {ra}, {dec}"
    if not 0.0 <= ra <= 360.0:
        return f"ra {ra} outside 0..360 degrees"
    if not -90.0 <= dec <= 90.0:
        return f"dec {dec} outside -90..90 degrees"
    return None


def valid_mask(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Element-wise: finite positions inside the ranges `position_problem` accepts."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (dec >= -90) & (dec <= 90)
