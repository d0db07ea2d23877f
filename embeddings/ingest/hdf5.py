"""HDF5 readers: the AstroCLIP cross-matched layout and the Multimodal Universe image/spectrum layouts.

Both stream: rows are read in slices of a few tens of MB with h5py, never the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from backend.spectra import desi_wavelength

from . import report as R
from .hdf5_guard import check_rows, check_storage, row_bytes
from .records import Record, Skip, SourceInfo, Spectrum

CHUNK_BYTES = 32 * 2**20
LEGACY_PIXEL_SCALE = 0.262
ASTROCLIP_KEYS = ("images", "spectra", "redshifts", "targetids")
MMU_IMAGE_FLUX = ("image_array", "image_flux")  # image_array is what MMU's build scripts write
_MMU_USED = {"object_id", "ra", "dec", "RA", "DEC", "Z", "z", "redshift"}


def _str(value: Any) -> str:
    return value.decode("utf-8", "replace").strip() if isinstance(value, bytes | np.bytes_) else str(value).strip()


def band_name(raw: Any) -> str:
    """'des-g' / 'DECAM-G' / b'g' -> 'g'."""
    return _str(raw).lower().rsplit("-", 1)[-1]


def _sections(f: h5py.File) -> list[h5py.Group]:
    """Groups holding the AstroCLIP datasets: the root itself, or its numbered sub-groups ('0'..'9')."""
    found = [f] if "targetids" in f and isinstance(f["targetids"], h5py.Dataset) else []
    found += [g for _, g in sorted(f.items()) if isinstance(g, h5py.Group) and "targetids" in g]
    return found


def detect_layout(f: h5py.File) -> str | None:
    """'astroclip', 'mmu' or None."""
    if _sections(f):
        return "astroclip"
    if "object_id" in f and (any(k in f for k in MMU_IMAGE_FLUX) or "spectrum_flux" in f):
        return "mmu"
    return None


def _rows_per_chunk(*datasets: h5py.Dataset | None) -> int:
    """Rows per read so that one read of every dataset used holds about CHUNK_BYTES (declared shapes)."""
    total = sum(row_bytes(d) for d in datasets if d is not None)
    return int(max(1, min(4096, CHUNK_BYTES // max(total, 1))))


class Hdf5Reader:
    """Streams one HDF5 file in either layout, yielding Records and Skips."""

    def __init__(self, path: Path, survey: str | None = None, *, bands: list[str] | None = None, labels: bool = True) -> None:
        self.path, self.name = path, path.name
        self.want_bands = bands
        self.with_labels = labels
        try:
            self.file = h5py.File(path, "r")
        except OSError as exc:
            raise R.SourceError(f"{path}: not a readable HDF5 file ({exc})", reason=R.CORRUPT_FILE) from None
        try:
            check_storage(self.file, path.name)  # before anything resolves a link or reads a dataset
        except R.SourceError:
            self.file.close()
            raise
        self.layout = detect_layout(self.file)
        if self.layout is None:
            keys = ", ".join(list(self.file.keys())[:12])
            self.file.close()
            raise R.SourceError(
                f"{path}: HDF5 layout not recognised (found datasets: {keys}); expected AstroCLIP "
                "(images, spectra, redshifts, targetids) or Multimodal Universe (object_id with image_array or spectrum_flux)"
            )
        self.missing: dict[str, dict] = {}
        try:
            self._check_rows()
            self.info = self._info(survey)
            self.info.notes = self.missing
        except (R.SourceError, TypeError, ValueError, KeyError) as exc:
            self.file.close()
            if isinstance(exc, R.SourceError):
                raise
            raise R.SourceError(f"{path}: unusable {self.layout} layout ({exc})", reason=R.WRONG_SHAPE) from None

    def _check_rows(self) -> None:
        """Refuse the file when the rows it declares would not fit the per-row memory bound."""
        if self.layout == "astroclip":
            for g in _sections(self.file):
                check_rows([g.get(k) for k in ASTROCLIP_KEYS], self.name)
                z, ids = g.get("redshifts"), g["targetids"]
                short = len(ids) - (0 if z is None else len(z))
                if short > 0:
                    self.missing["redshift"] = {
                        "reason": R.MISSING_VALUE, "rows": self.missing.get("redshift", {}).get("rows", 0) + short,
                        "detail": f"{g.name} has {0 if z is None else len(z)} redshifts for {len(ids)} targetids"}
        else:
            check_rows([d for d in self.file.values() if isinstance(d, h5py.Dataset)], self.name)

    # ----------------------------------------------------------------- metadata
    def _info(self, survey: str | None) -> SourceInfo:
        f = self.file
        if self.layout == "astroclip":
            total = sum(len(g["targetids"]) for g in _sections(f))
            return SourceInfo(
                kind="hdf5-astroclip",
                survey=survey or "astroclip",
                total=total,
                bands=["g", "r", "z"],
                pixel_scale=LEGACY_PIXEL_SCALE,
                wavelength=desi_wavelength() if any("spectra" in g for g in _sections(f)) else None,
                description="AstroCLIP HDF5: Legacy Survey g,r,z cutouts + DESI spectra",
            )
        has_image = self._image_ds() is not None
        bands = self._file_bands() if has_image else None
        scale = None
        if has_image and "image_scale" in f and len(f["image_scale"]):
            scale = float(np.nanmean(np.asarray(f["image_scale"][0], dtype=np.float64)))
        default = "legacysurvey" if has_image else "desi"
        return SourceInfo(
            kind="hdf5-mmu",
            survey=survey or default,
            total=len(f["object_id"]),
            bands=self.want_bands or bands,
            pixel_scale=scale or (LEGACY_PIXEL_SCALE if has_image else None),
            description="Multimodal Universe HDF5",
        )

    def _image_ds(self) -> h5py.Dataset | None:
        return next((self.file[k] for k in MMU_IMAGE_FLUX if k in self.file), None)

    def _file_bands(self) -> list[str] | None:
        f = self.file
        if "image_band" in f and len(f["image_band"]):
            return [band_name(b) for b in np.atleast_1d(f["image_band"][0])]
        ds = self._image_ds()
        return [f"band{i}" for i in range(ds.shape[1])] if ds is not None and ds.ndim == 4 else None

    # ----------------------------------------------------------------- rows
    def __iter__(self) -> Iterator[Record | Skip]:
        try:
            if self.layout == "astroclip":
                for group in _sections(self.file):
                    yield from self._astroclip(group)
            else:
                yield from self._mmu()
        finally:
            self.file.close()

    def _read(self, ds: h5py.Dataset | None, lo: int, hi: int) -> np.ndarray | None:
        return None if ds is None else ds[lo:hi]

    def _astroclip(self, g: h5py.Group) -> Iterator[Record | Skip]:
        prefix = f"{self.name}:{g.name.strip('/') + '/' if g.name != '/' else ''}"
        ids, images, spectra, z = (g.get(k) for k in ("targetids", "images", "spectra", "redshifts"))
        n = len(ids)
        images_ok = images is None or (images.ndim == 4 and images.shape[-1] == 3)
        step = _rows_per_chunk(ids, images, spectra, z)
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            try:
                tid = ids[lo:hi]
                img = self._read(images, lo, min(hi, len(images))) if images is not None and images_ok else None
                spe = self._read(spectra, lo, min(hi, len(spectra))) if spectra is not None else None
                red = self._read(z, lo, min(hi, len(z))) if z is not None else None
            except (OSError, RuntimeError, ValueError) as exc:
                for i in range(lo, hi):
                    yield Skip(f"{prefix}row {i}", R.CORRUPT_FILE, f"unreadable rows {lo}-{hi - 1}: {exc}")
                continue
            for k, i in enumerate(range(lo, hi)):
                where = f"{prefix}row {i}"
                if images is not None and not images_ok:
                    yield Skip(where, R.WRONG_SHAPE, f"images dataset has shape {images.shape}, expected N x H x W x 3 (g,r,z)")
                    continue
                rec = Record(object_id=_str(tid[k]), where=where)
                if img is not None:
                    if k >= len(img):
                        yield Skip(where, R.WRONG_SHAPE, f"no image for row {i} (images has {len(images)} rows)")
                        continue
                    rec.image, rec.bands = np.ascontiguousarray(img[k].T), ["g", "r", "z"]  # undo AstroCLIP's .T
                if spe is not None:
                    if k >= len(spe):
                        yield Skip(where, R.WRONG_SHAPE, f"no spectrum for row {i} (spectra has {len(spectra)} rows)")
                        continue
                    rec.spectrum = Spectrum(flux=np.asarray(spe[k]))  # N x 7781 or N x 7781 x 1
                if red is not None and k < len(red) and np.isfinite(red[k]):
                    rec.redshift = float(red[k])
                yield rec

    def _mmu(self) -> Iterator[Record | Skip]:
        f = self.file
        n = len(f["object_id"])
        image, ivar = self._image_ds(), f.get("spectrum_ivar")
        flux, lam, mask = f.get("spectrum_flux"), f.get("spectrum_lambda"), f.get("spectrum_mask")
        ra = f.get("ra", f.get("RA"))
        dec = f.get("dec", f.get("DEC"))
        z = next((f[k] for k in ("Z", "z", "redshift") if k in f and f[k].ndim == 1), None)
        band_ds, psf_ds = f.get("image_band"), f.get("image_psf_fwhm")
        label_ds = self._label_datasets(n) if self.with_labels else {}
        step = _rows_per_chunk(f["object_id"], image, flux, ivar, lam, mask, ra, dec, z, band_ds, psf_ds, *label_ds.values())
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            try:
                block = {
                    "id": f["object_id"][lo:hi],
                    "img": self._read(image, lo, hi),
                    "band": self._read(band_ds, lo, hi),
                    "psf": self._read(psf_ds, lo, hi),
                    "flux": self._read(flux, lo, hi),
                    "ivar": self._read(ivar, lo, hi),
                    "lam": self._read(lam, lo, hi),
                    "mask": self._read(mask, lo, hi),
                    "ra": self._read(ra, lo, hi),
                    "dec": self._read(dec, lo, hi),
                    "z": self._read(z, lo, hi),
                    "labels": {k: d[lo:hi] for k, d in label_ds.items()},
                }
            except (OSError, RuntimeError, ValueError) as exc:
                for i in range(lo, hi):
                    yield Skip(f"{self.name}:row {i}", R.CORRUPT_FILE, f"unreadable rows {lo}-{hi - 1}: {exc}")
                continue
            for k in range(hi - lo):
                yield self._mmu_record(block, k, lo + k)

    def _mmu_record(self, b: dict[str, Any], k: int, i: int) -> Record | Skip:
        where = f"{self.name}:row {i}"
        rec = Record(object_id=_str(b["id"][k]), where=where)
        if b["ra"] is not None and b["dec"] is not None:
            rec.ra, rec.dec = float(b["ra"][k]), float(b["dec"][k])
        if b["z"] is not None:
            rec.redshift = float(b["z"][k])
        if b["img"] is not None:
            cube = np.asarray(b["img"][k], dtype=np.float32)
            bands = [band_name(x) for x in np.atleast_1d(b["band"][k])] if b["band"] is not None else list(self.info.bands or [])
            if cube.ndim != 3 or cube.shape[0] != len(bands):
                return Skip(where, R.WRONG_SHAPE, f"image_array row has shape {cube.shape}, expected bands x H x W for bands {bands}")
            if self.want_bands:
                lacking = [x for x in self.want_bands if x not in bands]
                if lacking:
                    return Skip(where, R.MISSING_BANDS, f"missing band(s) {','.join(lacking)}")
                cube, bands_sel = cube[[bands.index(x) for x in self.want_bands]], self.want_bands
            else:
                bands_sel = bands
            rec.image, rec.bands = cube, bands_sel
            if b["psf"] is not None:
                for name, val in zip(bands, np.atleast_1d(b["psf"][k]), strict=False):
                    if name in bands_sel:
                        rec.labels[f"psf_fwhm_{name}"] = float(val)
        if b["flux"] is not None:
            ivar = None if b["ivar"] is None else np.asarray(b["ivar"][k], dtype=np.float64)
            if ivar is not None and b["mask"] is not None:
                ivar = np.where(np.asarray(b["mask"][k], bool), 0.0, ivar)
            wave = None if b["lam"] is None else np.asarray(b["lam"][k], dtype=np.float64)
            if wave is None:
                return Skip(where, R.MISMATCHED_GRID, "spectrum_lambda is missing: the wavelength grid is unknown")
            rec.spectrum = Spectrum(flux=np.asarray(b["flux"][k]), ivar=ivar, wave=wave)
        for name, values in b["labels"].items():
            value = values[k]
            rec.labels[name] = _str(value) if isinstance(value, bytes | np.bytes_) else value.item()
        return rec

    def _label_datasets(self, n: int) -> dict[str, h5py.Dataset]:
        """1-D numeric/bool/string datasets of one value per row (catalogue columns), not already used."""
        out = {}
        for key, ds in self.file.items():
            if key in _MMU_USED or key.startswith(("image_", "spectrum_")) or not isinstance(ds, h5py.Dataset):
                continue
            if ds.ndim == 1 and len(ds) == n and ds.dtype.kind in "biufS":
                out[key] = ds
        return out
