"""Readers for single files and folders: FITS cutouts (cube or one file per band), PNG/JPEG cutouts, FITS spectra."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from backend.imaging import png_bytes

from . import report as R
from .fitsfiles import FileProblem, band_sort, open_fits, read_cutout, read_desi, read_sdss, spectrum_kind
from .records import Record, Skip, SourceInfo
from .safety import EXTENSIONS, extension, safe_children

PER_BAND = re.compile(r"^(?P<id>.+?)[_-](?P<band>[ugrizyY]|W[1-4]|w[1-4]|NUV|FUV|nuv|fuv|[JHK]|Ks)$")
RGB_BANDS = ["red", "green", "blue"]
MAX_PICTURE_PIXELS = 4096 * 4096  # a PNG/JPEG cutout; a few KB can declare gigapixels


def _stem(path: Path) -> str:
    return path.name[: len(path.name) - len(extension(path.name))] if extension(path.name) else path.stem


class FilesReader:
    """Streams a folder (or one file) of FITS cutouts, PNG/JPEG cutouts or FITS spectra."""

    def __init__(self, path: Path, survey: str | None = None, *, bands: list[str] | None = None,
                 pixel_scale: float | None = None, strict: bool = False) -> None:
        self.root = path if path.is_dir() else path.parent
        self.strict = strict  # a single named file: a broken file is a SourceError
        self.unsafe: list[Path] = []
        self.unsupported: list[Path] = []
        self.singles: list[Path] = []
        self.per_band: dict[str, dict[str, Path]] = {}
        files = [(path, True)] if path.is_file() else list(safe_children(path))
        for file, safe in files:
            kind = EXTENSIONS.get(extension(file.name))
            if not safe:
                self.unsafe.append(file)
            elif kind == "fits" and (m := PER_BAND.match(_stem(file))):
                self.per_band.setdefault(m["id"], {})[m["band"].lower()] = file
            elif kind in ("fits", "image"):
                self.singles.append(file)
            else:
                self.unsupported.append(file)
        if not (self.singles or self.per_band or self.unsafe):
            others = f" (found {', '.join(p.name for p in self.unsupported[:3])}: ingest HDF5 and catalogue files one by one)"
            raise R.SourceError(f"{path}: no FITS, PNG or JPEG files found{others if self.unsupported else ''}")
        self.info = self._info(path, survey, bands, pixel_scale)
        self._eager = list(self._items()) if strict else None  # one named file: fail before any work starts

    def _info(self, path: Path, survey: str | None, bands: list[str] | None, pixel_scale: float | None) -> SourceInfo:
        images = [f for f in self.singles if EXTENSIONS[extension(f.name)] == "image"]
        spectra = kind = None
        if self.singles and not images:
            try:
                spectra = spectrum_kind(open_fits(self.singles[0]))
            except FileProblem:
                spectra = None
        if spectra:
            kind, default = f"{spectra}-spectra", spectra
        elif images and not self.per_band and len(images) == len(self.singles):
            kind, default = "image-folder", "images"
            bands = bands or RGB_BANDS
        else:
            kind, default = "fits-cutouts", "cutouts"
            if not bands and self.per_band:
                bands = band_sort({b for group in self.per_band.values() for b in group})
        if path.is_file():
            kind = kind.replace("-folder", "").replace("fits-cutouts", "fits-cutout")
        total = len(self.singles) + len(self.per_band) + len(self.unsafe) + len(self.unsupported)
        return SourceInfo(kind=kind, survey=survey or default, total=total, bands=bands, pixel_scale=pixel_scale)

    def __iter__(self) -> Iterator[Record | Skip]:
        yield from self._eager if self._eager is not None else self._items()

    def _items(self) -> Iterator[Record | Skip]:
        for file in self.unsafe:
            yield Skip(file.name, R.UNSAFE_PATH, "symbolic link pointing outside the folder; not followed")
        for file in self.unsupported:
            kind = EXTENSIONS.get(extension(file.name))
            how = f"{kind.upper()} files are ingested one at a time (python -m embeddings ingest FILE)" if kind else \
                "not a FITS, PNG or JPEG file"
            yield Skip(file.name, R.UNSUPPORTED, how)
        for file in self.singles:
            yield from self._guard(file.name, lambda file=file: self._single(file))
        for oid, group in sorted(self.per_band.items()):
            yield from self._guard(f"{oid} ({', '.join(p.name for p in group.values())})", lambda o=oid, g=group: self._bands(o, g))

    def _guard(self, where: str, read) -> Iterator[Record | Skip]:
        try:
            yield from read()
        except FileProblem as exc:
            if self.strict:
                raise R.SourceError(f"{where}: {exc}", reason=exc.reason) from None
            yield Skip(where, exc.reason, str(exc))

    def _single(self, file: Path) -> list[Record | Skip]:
        if EXTENSIONS[extension(file.name)] == "image":
            return [self._picture(file)]
        hdul = open_fits(file)
        kind = spectrum_kind(hdul)
        if kind == "sdss":
            return list(read_sdss(hdul, file.name, _stem(file)))
        if kind == "desi":
            return read_desi(hdul, file.name)
        cut = read_cutout(file)
        self._learn_scale(cut.pixel_scale)
        data = cut.data if cut.data.ndim == 3 else cut.data[None]
        bands = cut.bands or (self.info.bands if self.info.bands and len(self.info.bands) == data.shape[0] else None)
        bands = bands or [f"band{i}" for i in range(data.shape[0])]
        return [Record(object_id=_stem(file), where=file.name, ra=cut.ra, dec=cut.dec, image=data, bands=bands)]

    def _bands(self, oid: str, group: dict[str, Path]) -> list[Record | Skip]:
        planes, ra, dec = {}, None, None
        for band, file in group.items():
            cut = read_cutout(file)
            self._learn_scale(cut.pixel_scale)
            data = cut.data[0] if cut.data.ndim == 3 and cut.data.shape[0] == 1 else cut.data
            if data.ndim != 2:
                return [Skip(file.name, R.WRONG_SHAPE, f"one-band file holds an image of shape {data.shape}")]
            planes[band] = data
            if ra is None and cut.ra is not None:
                ra, dec = cut.ra, cut.dec
        shapes = {b: p.shape for b, p in planes.items()}
        if len(set(shapes.values())) > 1:
            return [Skip(oid, R.WRONG_SHAPE, f"band images differ in shape: {shapes}")]
        order = band_sort(list(planes))
        cube = np.stack([planes[b] for b in order])
        return [Record(object_id=oid, where=f"{oid} ({', '.join(group[b].name for b in order)})", ra=ra, dec=dec, image=cube, bands=order)]

    def _picture(self, file: Path) -> Record | Skip:
        try:
            with Image.open(file) as img:
                if img.width * img.height > MAX_PICTURE_PIXELS:
                    raise FileProblem(f"refused (too_large): {img.width} x {img.height} pixels, the limit is "
                                      f"{MAX_PICTURE_PIXELS:,}", R.TOO_LARGE)
                img.load()
                rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        except FileProblem:
            raise
        except Image.DecompressionBombError as exc:
            raise FileProblem(f"refused (too_large): {exc}", R.TOO_LARGE) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise FileProblem(f"corrupt or truncated image ({' '.join(str(exc).split())[:160]})") from None
        return Record(object_id=_stem(file), where=file.name, image=np.moveaxis(rgb, -1, 0), bands=RGB_BANDS,
                      thumbnail=png_bytes(rgb, size=96))

    def _learn_scale(self, scale: float | None) -> None:
        if self.info.pixel_scale is None and scale:
            self.info.pixel_scale = round(scale, 4)
