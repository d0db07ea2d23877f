"""Writers of small sample files in the official layouts (AstroCLIP, Multimodal Universe, Legacy Survey cutout
FITS, SDSS spec-lite, DESI coadd), for tests, benchmarks and trying ingest without downloads."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from backend.spectra import desi_wavelength

LEGACY_SCALE = 0.262


def galaxy_cube(rng: np.random.Generator, bands: int = 3, size: int = 152, flux: float = 5.0) -> np.ndarray:
    """A bands x size x size cube: an elliptical exponential blob plus Gaussian sky noise (nanomaggies-like)."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    q, theta, r_e = rng.uniform(0.4, 1.0), rng.uniform(0, np.pi), rng.uniform(3, 10)
    xr, yr = x * np.cos(theta) + y * np.sin(theta), -x * np.sin(theta) + y * np.cos(theta)
    blob = np.exp(-np.hypot(xr, yr / q) / r_e)
    colours = np.linspace(0.6, 1.4, bands)
    cube = flux / blob.sum() * blob[None] * colours[:, None, None] * 50
    return (cube + rng.normal(0, 0.01, (bands, size, size))).astype(np.float32)


def galaxy_spectrum(rng: np.random.Generator, wave: np.ndarray, z: float = 0.1) -> np.ndarray:
    """A smooth continuum with an H-alpha emission line at redshift z (1e-17 erg/s/cm2/A)."""
    cont = 2.0 + (wave / 5000.0) ** 1.5 + rng.normal(0, 0.05)
    line = 8.0 * np.exp(-0.5 * ((wave - 6564.6 * (1 + z)) / 3.0) ** 2)
    return (cont + line).astype(np.float32)


def write_astroclip_h5(path: Path, n: int, *, seed: int = 0, groups: int = 2, spectra_3d: bool = True,
                       chunk: int = 256) -> Path:
    """AstroCLIP layout: groups '0'..'k' each with images (N,152,152,3), spectra (N,7781,1), redshifts, targetids."""
    rng = np.random.default_rng(seed)
    wave = desi_wavelength()
    sizes = [len(a) for a in np.array_split(np.arange(n), groups)]
    tid = 39627000000000000 + np.arange(n, dtype=np.int64)
    start = 0
    with h5py.File(path, "w") as f:
        for g, m in enumerate(sizes):
            grp = f.create_group(str(g))
            images = grp.create_dataset("images", (m, 152, 152, 3), dtype="float32", chunks=(1, 152, 152, 3))
            shape = (m, wave.size, 1) if spectra_3d else (m, wave.size)
            spectra = grp.create_dataset("spectra", shape, dtype="float32", chunks=(1, *shape[1:]))
            z = rng.uniform(0.02, 0.4, m).astype(np.float32)
            for lo in range(0, m, chunk):
                hi = min(m, lo + chunk)
                images[lo:hi] = np.stack([galaxy_cube(rng).T for _ in range(lo, hi)])  # AstroCLIP stores cube.T
                spec = np.stack([galaxy_spectrum(rng, wave, float(z[k])) for k in range(lo, hi)])
                spectra[lo:hi] = spec[..., None] if spectra_3d else spec
            grp.create_dataset("redshifts", data=z)
            grp.create_dataset("targetids", data=tid[start : start + m])
            start += m
    return path


def write_mmu_legacysurvey_h5(path: Path, n: int, *, seed: int = 0, size: int = 64, ra0: float = 150.0,
                              dec0: float = 2.0) -> Path:
    """Multimodal Universe legacysurvey layout: object_id, ra, dec, image_array (N,4,H,W), image_band,
    image_ivar, image_mask, image_psf_fwhm, image_scale, plus catalogue columns (FLUX_G, EBV...)."""
    rng = np.random.default_rng(seed)
    filters = np.array([[b"des-g", b"des-r", b"des-i", b"des-z"]] * n, dtype=h5py.string_dtype("utf-8", 5))
    with h5py.File(path, "w") as f:
        f.create_dataset("object_id", data=np.array([f"1234p020-{i}".encode() for i in range(n)], dtype=h5py.string_dtype("utf-8", 16)))
        f.create_dataset("ra", data=ra0 + 0.01 * np.arange(n))
        f.create_dataset("dec", data=np.full(n, dec0))
        f.create_dataset("image_array", data=np.stack([galaxy_cube(rng, 4, size) for _ in range(n)]), chunks=True)
        f.create_dataset("image_band", data=filters)
        f.create_dataset("image_ivar", data=np.full((n, 4, size, size), 1e4, np.float32), chunks=True)
        f.create_dataset("image_mask", data=np.zeros((n, size, size), bool))
        f.create_dataset("image_psf_fwhm", data=rng.uniform(1.0, 1.5, (n, 4)).astype(np.float32))
        f.create_dataset("image_scale", data=np.full((n, 4), LEGACY_SCALE, np.float32))
        f.create_dataset("FLUX_G", data=rng.uniform(1, 10, n).astype(np.float32))
        f.create_dataset("EBV", data=rng.uniform(0, 0.1, n).astype(np.float32))
        f.create_dataset("TYPE", data=np.array([b"SER"] * n))
    return path


def write_mmu_desi_h5(path: Path, n: int, *, seed: int = 0, ra0: float = 150.0, dec0: float = 2.0) -> Path:
    """Multimodal Universe DESI layout: object_id (TARGETID), ra, dec, Z, spectrum_flux/ivar/lambda/mask/lsf_sigma."""
    rng = np.random.default_rng(seed)
    wave = desi_wavelength().astype(np.float32)
    z = rng.uniform(0.02, 0.4, n)
    with h5py.File(path, "w") as f:
        f.create_dataset("object_id", data=39627000000000000 + np.arange(n, dtype=np.int64))
        f.create_dataset("ra", data=ra0 + 0.01 * np.arange(n))
        f.create_dataset("dec", data=np.full(n, dec0))
        f.create_dataset("Z", data=z.astype(np.float32))
        f.create_dataset("ZERR", data=np.full(n, 1e-4, np.float32))
        f.create_dataset("spectrum_flux", data=np.stack([galaxy_spectrum(rng, wave, zz) for zz in z]))
        f.create_dataset("spectrum_ivar", data=np.full((n, wave.size), 25.0, np.float32))
        f.create_dataset("spectrum_lambda", data=np.repeat(wave[None], n, axis=0))
        f.create_dataset("spectrum_mask", data=np.zeros((n, wave.size), bool))
        f.create_dataset("spectrum_lsf_sigma", data=np.full((n, wave.size), 1.0, np.float32))
    return path


def cutout_header(ra: float, dec: float, size: int, bands: list[str] | None = None) -> fits.Header:
    """A TAN WCS header centred on (ra, dec) at the Legacy Survey pixel scale, with BANDS/BANDi like its cutouts."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    wcs.wcs.cd = np.array([[-LEGACY_SCALE / 3600, 0], [0, LEGACY_SCALE / 3600]])
    header = wcs.to_header()
    if bands and len(bands) > 1:
        header["BANDS"] = "".join(bands)
        for i, b in enumerate(bands):
            header[f"BAND{i}"] = b
    elif bands:
        header["BAND"] = bands[0]
    return header


def write_cutout_fits(path: Path, data: np.ndarray, ra: float, dec: float, bands: list[str] | None = None) -> Path:
    """A Legacy-Survey-style cutout FITS (2-D one band or 3-D bands x H x W cube) with WCS."""
    fits.PrimaryHDU(np.asarray(data, np.float32), header=cutout_header(ra, dec, data.shape[-1], bands)).writeto(path, overwrite=True)
    return path


def write_sdss_spec(path: Path, *, ra: float, dec: float, z: float, plate: int = 1000, mjd: int = 52000,
                    fiber: int = 1, seed: int = 0) -> Path:
    """An SDSS spec-lite file: COADD (flux, loglam, ivar, and_mask, ...) and SPECOBJ (PLUG_RA, PLUG_DEC, Z, ...)."""
    rng = np.random.default_rng(seed)
    loglam = np.arange(3.5800, 3.9640, 1e-4)
    wave = 10**loglam
    flux = galaxy_spectrum(rng, wave, z) + rng.normal(0, 0.2, wave.size).astype(np.float32)
    cols = [
        fits.Column("flux", "E", array=flux),
        fits.Column("loglam", "E", array=loglam.astype(np.float32)),
        fits.Column("ivar", "E", array=np.full(wave.size, 25.0, np.float32)),
        fits.Column("and_mask", "J", array=np.zeros(wave.size, np.int32)),
        fits.Column("or_mask", "J", array=np.zeros(wave.size, np.int32)),
        fits.Column("wdisp", "E", array=np.ones(wave.size, np.float32)),
        fits.Column("sky", "E", array=np.zeros(wave.size, np.float32)),
        fits.Column("model", "E", array=flux),
    ]
    specobj = [
        fits.Column("PLATE", "J", array=[plate]),
        fits.Column("MJD", "J", array=[mjd]),
        fits.Column("FIBERID", "J", array=[fiber]),
        fits.Column("PLUG_RA", "D", array=[ra]),
        fits.Column("PLUG_DEC", "D", array=[dec]),
        fits.Column("Z", "E", array=[z]),
        fits.Column("CLASS", "6A", array=["GALAXY"]),
        fits.Column("ZWARNING", "J", array=[0]),
    ]
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "SDSS 2.5-M"
    hdul = fits.HDUList([primary, fits.BinTableHDU.from_columns(cols, name="COADD"),
                         fits.BinTableHDU.from_columns(specobj, name="SPECOBJ")])
    hdul.writeto(path, overwrite=True)
    return path


def write_desi_coadd(path: Path, targets: list[tuple[int, float, float]], *, seed: int = 0) -> Path:
    """A DESI coadd file: FIBERMAP (TARGETID, TARGET_RA, TARGET_DEC) and B/R/Z WAVELENGTH, FLUX, IVAR, MASK HDUs."""
    rng = np.random.default_rng(seed)
    n = len(targets)
    fm = fits.BinTableHDU.from_columns([
        fits.Column("TARGETID", "K", array=[t[0] for t in targets]),
        fits.Column("TARGET_RA", "D", array=[t[1] for t in targets]),
        fits.Column("TARGET_DEC", "D", array=[t[2] for t in targets]),
    ], name="FIBERMAP")
    hdus = [fits.PrimaryHDU(), fm]
    for arm, lo, hi in (("B", 3600.0, 5800.0), ("R", 5760.0, 7620.0), ("Z", 7520.0, 9824.0)):
        wave = np.arange(lo, hi + 0.01, 0.8)
        flux = np.stack([galaxy_spectrum(rng, wave, 0.1) for _ in range(n)])
        hdus += [
            fits.ImageHDU(wave, name=f"{arm}_WAVELENGTH"),
            fits.ImageHDU(flux.astype(np.float32), name=f"{arm}_FLUX"),
            fits.ImageHDU(np.full(flux.shape, 16.0, np.float32), name=f"{arm}_IVAR"),
            fits.ImageHDU(np.zeros(flux.shape, np.int32), name=f"{arm}_MASK"),
        ]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path
