"""FITS readers: image cutouts (cube or one band per file) and SDSS spec-lite / DESI coadd spectra."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from backend.spectra import desi_wavelength, resample_spectrum

from . import report as R
from .records import Record, Skip, Spectrum

BAND_ORDER = ["fuv", "nuv", "u", "g", "r", "i", "z", "y", "j", "h", "k", "ks", "w1", "w2", "w3", "w4"]
DESI_ARMS = ("B", "R", "Z")


MAX_FITS_BYTES = 2**30  # declared data of one FITS file (cutouts are MB, a DESI coadd of 5000 targets ~600 MB)


class FileProblem(ValueError):
    """One file is unusable (corrupt, truncated, wrong content, too large); the message says why."""

    def __init__(self, message: str, reason: str = R.CORRUPT_FILE) -> None:
        super().__init__(message)
        self.reason = reason


def declared_bytes(header: fits.Header) -> int:
    """Bytes of data an HDU header declares (|BITPIX|/8 x NAXIS1 x ... x NAXISn + PCOUNT), before reading any."""
    naxis = int(header.get("ZNAXIS", header.get("NAXIS", 0)) or 0)
    prefix = "ZNAXIS" if "ZNAXIS" in header else "NAXIS"
    if naxis == 0:
        return 0
    size = 1
    for i in range(1, naxis + 1):
        size *= max(int(header.get(f"{prefix}{i}", 0) or 0), 0)
    bitpix = abs(int(header.get("ZBITPIX", header.get("BITPIX", 8)) or 8))
    return size * bitpix // 8 + max(int(header.get("PCOUNT", 0) or 0), 0)


def _check_declared(path: Path) -> None:
    """Refuse a FITS file whose headers declare more data than MAX_FITS_BYTES (reads headers only)."""
    total = 0
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        for hdu in hdul:
            total += declared_bytes(hdu.header)
            if total > MAX_FITS_BYTES:
                raise FileProblem(f"refused (too_large): its headers declare over {MAX_FITS_BYTES / 2**30:.0f} GiB of "
                                  f"data (HDU {hdu.name or 'PRIMARY'}: {declared_bytes(hdu.header) / 2**30:.1f} GiB)",
                                  R.TOO_LARGE)


def band_sort(bands: set[str] | list[str]) -> list[str]:
    """Bands in wavelength order (known names first, then alphabetical)."""
    return sorted(bands, key=lambda b: (BAND_ORDER.index(b) if b in BAND_ORDER else len(BAND_ORDER), b))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


def open_fits(path: Path) -> fits.HDUList:
    """Open a FITS file fully in memory (small cutouts/spectra), turning any failure into FileProblem."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _check_declared(path)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
            for hdu in hdul:
                _ = hdu.data  # force reading: truncated files fail or warn here
    except FileProblem:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... for broken files
        raise FileProblem(f"corrupt or truncated FITS ({_one_line(exc)})") from None
    truncated = [w for w in caught if "truncated" in str(w.message).lower()]
    if truncated:
        raise FileProblem(f"truncated FITS ({' '.join(str(truncated[0].message).split())})")
    return hdul


def spectrum_kind(hdul: fits.HDUList) -> str | None:
    """'sdss' for spec/spec-lite files, 'desi' for coadd files, None for anything else."""
    names = {h.name.upper() for h in hdul}
    if "COADD" in names:
        return "sdss"
    if "FIBERMAP" in names and any(f"{a}_FLUX" in names for a in DESI_ARMS):
        return "desi"
    return None


# ----------------------------------------------------------------- images
@dataclass
class Cutout:
    """One image plane or cube from a FITS file, with what its header says."""

    data: np.ndarray
    bands: list[str] | None
    ra: float | None
    dec: float | None
    pixel_scale: float | None


def _header_bands(header: fits.Header, nplanes: int) -> list[str] | None:
    keyed = [header.get(f"BAND{i}") for i in range(nplanes)]
    if all(isinstance(b, str) and b.strip() for b in keyed):
        return [b.strip().lower() for b in keyed]
    packed = header.get("BANDS")
    if isinstance(packed, str) and len(packed.strip()) == nplanes:
        return list(packed.strip().lower())
    if nplanes == 1:
        single = header.get("BAND") or header.get("FILTER")
        if isinstance(single, str) and single.strip():
            return [single.strip().lower().rsplit("-", 1)[-1].rsplit(" ", 1)[-1]]
    return None


def _position(header: fits.Header, shape: tuple[int, ...]) -> tuple[float | None, float | None, float | None]:
    """(ra, dec) of the image centre and pixel scale in arcsec, from the WCS or RA/DEC keywords."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception:
            wcs = None
    if wcs is not None and wcs.has_celestial:
        ny, nx = shape[-2:]
        sky = wcs.celestial.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)
        icrs = sky.icrs
        scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
        return float(icrs.ra.deg), float(icrs.dec.deg), scale
    for ra_key, dec_key in (("RA", "DEC"), ("OBJRA", "OBJDEC"), ("RA_OBJ", "DEC_OBJ"), ("CRVAL1", "CRVAL2")):
        ra, dec = header.get(ra_key), header.get(dec_key)
        if ra is None or dec is None:
            continue
        if not isinstance(ra, str) and not isinstance(dec, str):
            try:
                return float(ra), float(dec), None  # degrees as written: the writer rejects impossible ones
            except (ValueError, TypeError):
                continue
        try:
            c = SkyCoord(str(ra), str(dec), unit=(u.hourangle, u.deg))
        except (ValueError, TypeError):
            continue
        return float(c.ra.deg), float(c.dec.deg), None
    return None, None, None


def read_cutout(path: Path) -> Cutout:
    """The first 2-D or 3-D image HDU of a FITS file."""
    hdul = open_fits(path)
    for hdu in hdul:
        if hdu.is_image and hdu.data is not None and hdu.data.ndim in (2, 3):
            data = np.asarray(hdu.data, dtype=np.float32)
            nplanes = 1 if data.ndim == 2 else data.shape[0]
            ra, dec, scale = _position(hdu.header, data.shape)
            if ra is None:
                ra, dec, _ = _position(hdul[0].header, data.shape)
            return Cutout(data, _header_bands(hdu.header, nplanes), ra, dec, scale)
    names = ", ".join(f"{h.name or i}:{type(h).__name__}" for i, h in enumerate(hdul))
    raise FileProblem(f"no 2-D or 3-D image in any HDU and no spectrum layout this reader knows (SDSS COADD, "
                      f"DESI FIBERMAP with B/R/Z_FLUX); HDUs: {names}")


# ----------------------------------------------------------------- spectra
def _col(table: fits.FITS_rec, *names: str) -> np.ndarray | None:
    have = {n.lower(): n for n in table.columns.names}
    for n in names:
        if n.lower() in have:
            return np.asarray(table[have[n.lower()]])
    return None


def read_sdss(hdul: fits.HDUList, where: str, stem: str) -> list[Record]:
    """SDSS spec / spec-lite: COADD (flux, loglam, ivar, and_mask) and SPECOBJ (PLUG_RA, PLUG_DEC, Z)."""
    coadd = hdul["COADD"].data
    flux, loglam, ivar = _col(coadd, "flux"), _col(coadd, "loglam"), _col(coadd, "ivar")
    if flux is None or loglam is None or ivar is None:
        raise FileProblem("COADD HDU lacks flux, loglam or ivar columns")
    and_mask = _col(coadd, "and_mask")
    ivar = np.asarray(ivar, np.float64)
    if and_mask is not None:
        ivar = np.where(and_mask != 0, 0.0, ivar)
    rec = Record(object_id=f"sdss-{stem}", where=where)
    rec.spectrum = Spectrum(flux=np.asarray(flux, np.float64), ivar=ivar, wave=10.0 ** np.asarray(loglam, np.float64))
    if "SPECOBJ" in hdul and len(hdul["SPECOBJ"].data):
        so = hdul["SPECOBJ"].data
        row = {n.upper(): so[n][0] for n in so.columns.names}
        if all(k in row for k in ("PLATE", "MJD", "FIBERID")):
            rec.object_id = f"sdss-{int(row['PLATE'])}-{int(row['MJD'])}-{int(row['FIBERID'])}"
        ra, dec = row.get("PLUG_RA", row.get("RA")), row.get("PLUG_DEC", row.get("DEC"))
        rec.ra = None if ra is None else float(ra)
        rec.dec = None if dec is None else float(dec)
        if "Z" in row:
            rec.redshift = float(row["Z"])
        for key in ("CLASS", "SUBCLASS"):
            if key in row:
                rec.labels[f"sdss_{key.lower()}"] = str(row[key]).strip()
        if "ZWARNING" in row:
            rec.labels["sdss_zwarning"] = int(row["ZWARNING"])
    return [rec]


def read_desi(hdul: fits.HDUList, where: str) -> list[Record | Skip]:
    """DESI coadd: FIBERMAP (TARGETID, TARGET_RA, TARGET_DEC) and per-arm WAVELENGTH/FLUX/IVAR/MASK, arms combined."""
    fm = hdul["FIBERMAP"].data
    tid = _col(fm, "TARGETID")
    if tid is None:
        raise FileProblem("FIBERMAP lacks TARGETID")
    ra, dec = _col(fm, "TARGET_RA", "RA"), _col(fm, "TARGET_DEC", "DEC")
    z = _col(hdul["REDSHIFTS"].data, "Z") if "REDSHIFTS" in hdul else None
    grid = desi_wavelength()
    arms = [a for a in DESI_ARMS if f"{a}_FLUX" in hdul and f"{a}_WAVELENGTH" in hdul]
    records: list[Record | Skip] = []
    for i, target in enumerate(tid):
        num, den = np.zeros(grid.size), np.zeros(grid.size)
        problem, reason = "", R.WRONG_SHAPE
        for a in arms:
            wave = np.asarray(hdul[f"{a}_WAVELENGTH"].data, np.float64)
            flux = np.asarray(hdul[f"{a}_FLUX"].data, np.float64)
            ivar = np.asarray(hdul[f"{a}_IVAR"].data, np.float64) if f"{a}_IVAR" in hdul else None
            if flux.ndim != 2 or i >= flux.shape[0] or flux.shape[1] != wave.size or ivar is None or ivar.shape != flux.shape:
                problem = f"arm {a}: flux {flux.shape}, ivar {None if ivar is None else ivar.shape}, wavelength {wave.shape}"
                break
            iv = ivar[i]
            if f"{a}_MASK" in hdul:
                iv = np.where(np.asarray(hdul[f"{a}_MASK"].data)[i] != 0, 0.0, iv)
            if not np.isfinite(flux[i][iv > 0]).all():
                problem, reason = f"arm {a}: NaN/inf flux in unmasked pixels", R.NON_FINITE
                break
            f_out, iv_out = resample_spectrum(wave, flux[i], iv, grid)
            assert iv_out is not None  # an inverse variance in gives one out
            num += iv_out * f_out
            den += iv_out
        if problem:
            records.append(Skip(f"{where} spectrum {i}", reason, problem))
            continue
        rec = Record(object_id=str(int(target)), where=f"{where} spectrum {i}")
        with np.errstate(invalid="ignore", divide="ignore"):
            rec.spectrum = Spectrum(flux=np.where(den > 0, num / den, 0.0), ivar=den, wave=grid)
        if ra is not None and dec is not None:
            rec.ra, rec.dec = float(ra[i]), float(dec[i])
        if z is not None and i < len(z):
            rec.redshift = float(z[i])
        records.append(rec)
    return records
