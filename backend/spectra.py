"""Spectral grids shared by the demo survey, ingest and the spectrum encoders."""

from __future__ import annotations

import numpy as np

# DESI-like observed-frame grid (AstroCLIP's spectrum input): 3600-9824 A, 0.8 A pixels, 7781 pixels.
DESI_START, DESI_STEP, DESI_NPIX = 3600.0, 0.8, 7781


def desi_wavelength() -> np.ndarray:
    """The 7781-pixel DESI-like wavelength grid in Angstrom."""
    return DESI_START + DESI_STEP * np.arange(DESI_NPIX, dtype=np.float64)
