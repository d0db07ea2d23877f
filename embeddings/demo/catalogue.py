"""The real SDSS catalogue behind the demo: 10,000 galaxies shipped inside the kcorrect package."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.io import fits

BANDS_SDSS = ("u", "g", "r", "i", "z")


def catalogue_path() -> Path:
    """Path of kcorrect/data/test/gst_tests_small.fits in the installed kcorrect package."""
    path = Path(str(resources.files("kcorrect"))) / "data" / "test" / "gst_tests_small.fits"
    if not path.is_file():
        raise FileNotFoundError(f"the demo catalogue {path} is missing: reinstall kcorrect (pip install kcorrect==5.1.9)")
    return path


@dataclass(frozen=True)
class Catalogue:
    """Catalogue columns as arrays (one entry per FITS row)."""

    row: np.ndarray  # FITS row index, the stable identity of each galaxy
    ra: np.ndarray
    dec: np.ndarray
    redshift: np.ndarray
    flux: np.ndarray  # [n, 5] ugriz MODELFLUX, nanomaggies (SDSS system, not extinction-corrected)
    flux_ivar: np.ndarray  # [n, 5]
    extinction: np.ndarray  # [n, 5] Galactic extinction, magnitudes

    def __len__(self) -> int:
        return len(self.row)

    def maggies(self) -> tuple[np.ndarray, np.ndarray]:
        """Extinction-corrected maggies and inverse variances, the inputs kcorrect fits."""
        corr = 10.0 ** (0.4 * self.extinction)
        maggies = self.flux * 1e-9 * corr
        ivar = self.flux_ivar * 1e18 / corr**2
        bad = ~np.isfinite(maggies) | ~np.isfinite(ivar) | (ivar < 0)
        return np.where(bad, 0.0, maggies), np.where(bad, 0.0, ivar)

    def magnitudes(self) -> np.ndarray:
        """Observed ugriz model magnitudes (22.5 - 2.5 log10 nanomaggies; NaN where flux <= 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.flux > 0, 22.5 - 2.5 * np.log10(self.flux), np.nan)


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read the catalogue FITS table (RA, DEC, Z, MODELFLUX, MODELFLUX_IVAR, EXTINCTION)."""
    with fits.open(path or catalogue_path(), memmap=False) as hdul:
        data = hdul[1].data
        return Catalogue(
            row=np.arange(len(data)),
            ra=np.asarray(data["RA"], np.float64),
            dec=np.asarray(data["DEC"], np.float64),
            redshift=np.asarray(data["Z"], np.float64),
            flux=np.asarray(data["MODELFLUX"], np.float64),
            flux_ivar=np.asarray(data["MODELFLUX_IVAR"], np.float64),
            extinction=np.asarray(data["EXTINCTION"], np.float64),
        )


def object_id(row: int) -> str:
    """Stable, meaningful id of a catalogue row: 'sdss-00123'."""
    return f"sdss-{int(row):05d}"


def split_for(object_id: str) -> str:
    """Fixed train/val/test split (80/10/10) from a hash of the object id, independent of seed and order."""
    bucket = zlib.crc32(object_id.encode()) % 10
    return "train" if bucket < 8 else "val" if bucket == 8 else "test"
