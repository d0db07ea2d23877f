"""Take data away: any selection as CSV / FITS / VOTable (astropy.table), one object's cutout and spectrum as FITS.

A selection is a frame with an `object_id` column and optional extra columns (a tag, a similarity, an anomaly
score); the exported table joins the catalogue columns onto it, keeping the selection's order. Pixels and
spectra are never part of a table: they go out per object, as FITS with units and, when known, a WCS.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.io import fits
from astropy.table import Table

from backend.imaging import row_cube
from backend.store import Atlas, AtlasError

FORMATS = {"csv": "ascii.csv", "fits": "fits", "votable": "votable"}
SUFFIXES = {"csv": ".csv", "fits": ".fits", "votable": ".vot"}
MIME = {"csv": "text/csv", "fits": "application/fits", "votable": "application/x-votable+xml"}
_SUFFIX_FORMAT = {".csv": "csv", ".fits": "fits", ".fit": "fits", ".vot": "votable", ".xml": "votable", ".votable": "votable"}
CATALOGUE_COLUMNS = ("survey", "ra", "dec", "redshift")
UNITS = {"ra": "deg", "dec": "deg", "separation_arcsec": "arcsec"}
SPECTRUM_FLUX_UNIT = "10**-17 erg s-1 cm-2 Angstrom-1"  # FITS-standard spelling (as SDSS writes it)
IMAGE_UNIT = "nanomaggy"


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The export format named by `fmt`, else by the file's suffix; AtlasError when neither is known."""
    fmt = (fmt or _SUFFIX_FORMAT.get(Path(path).suffix.lower(), "")).lower()
    if fmt not in FORMATS:
        raise AtlasError(f"cannot export to {Path(path).name!r} as {fmt or 'an unknown format'}: choose a .csv, .fits or .vot/.xml file (format csv, fits or votable)")
    return fmt


def selection_table(
    atlas: Atlas, selection: pd.DataFrame | Iterable[str], *, columns: Iterable[str] | None = None, name: str = "selection"
) -> Table:
    """An astropy Table of the selected objects: object_id, catalogue columns (ra/dec in deg), then the selection's
    own columns. `columns=None` adds every scalar label column of the atlas."""
    frame = selection if isinstance(selection, pd.DataFrame) else pd.DataFrame({"object_id": list(selection)})
    if "object_id" not in frame.columns:
        raise AtlasError("a selection needs an object_id column")
    frame = frame.reset_index(drop=True)
    wanted = list(CATALOGUE_COLUMNS) + (atlas.label_columns() if columns is None else list(columns))
    wanted = [c for c in dict.fromkeys(wanted) if c not in frame.columns and c != "object_id"]
    ids = list(dict.fromkeys(frame["object_id"].astype(str)))
    meta = atlas.get_objects(ids, wanted) if ids else pd.DataFrame(columns=["object_id", *wanted])
    meta = meta[[c for c in ["object_id", *wanted] if c in meta.columns]]
    merged = frame.assign(object_id=frame["object_id"].astype(str)).merge(meta, on="object_id", how="left")
    order = ["object_id", *[c for c in wanted if c in merged.columns], *[c for c in frame.columns if c != "object_id"]]
    return frame_to_table(merged[order], name=name, atlas_uri=atlas.uri)


def frame_to_table(frame: pd.DataFrame, *, name: str = "selection", atlas_uri: str = "") -> Table:
    """A DataFrame as an astropy Table that every format can write: timestamps as ISO text, lists as text,
    missing strings empty, units on coordinates."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            out[col] = series.astype(str)
        elif series.dtype == object:
            sample = series.dropna()
            if len(sample) and isinstance(sample.iloc[0], list | tuple | np.ndarray):
                out[col] = series.map(lambda v: " ".join(map(str, v)) if v is not None else "")
            elif len(sample) and isinstance(sample.iloc[0], bytes | bytearray):
                out = out.drop(columns=col)
                continue
            out[col] = out[col].map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        elif pd.api.types.is_bool_dtype(series):
            out[col] = series.astype(bool)
    table = Table.from_pandas(out)
    for col, unit in UNITS.items():
        if col in table.colnames:
            table[col].unit = unit
    table.meta["name"] = name
    table.meta["ID"] = "".join(c if c.isalnum() else "_" for c in name) or "selection"
    if atlas_uri:
        table.meta["atlas"] = atlas_uri
    return table


def table_bytes(table: Table, fmt: str) -> bytes:
    """A table encoded as CSV, FITS or VOTable bytes (for a download button or a SAMP message)."""
    fmt = format_for("", fmt)
    if fmt == "fits":
        hdu = fits.table_to_hdu(table)
        hdu.name = "SELECTION"
        raw = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(raw)
        return raw.getvalue()
    buf: io.BytesIO | io.StringIO = io.BytesIO() if fmt == "votable" else io.StringIO()
    table.write(buf, format=FORMATS[fmt])
    value = buf.getvalue()
    return value.encode() if isinstance(value, str) else value


def write_table(table: Table, path: str | Path, fmt: str | None = None) -> Path:
    """Write a table to a file in the format named or implied by the suffix; returns the path."""
    path = Path(path)
    path.write_bytes(table_bytes(table, format_for(path, fmt)))
    return path


def _object_row(atlas: Atlas, object_id: str, columns: list[str]) -> pd.Series:
    rows = atlas.get_objects([object_id], columns)
    if rows.empty:
        raise AtlasError(f"no object {object_id!r} in atlas {atlas.uri}")
    return rows.iloc[0]


def cutout_wcs_header(ra: float, dec: float, pixel_scale_arcsec: float, width: int, height: int) -> fits.Header:
    """A TAN WCS centred on (ra, dec) at the cutout's centre pixel, north up and east left."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(ra), float(dec)]
    wcs.wcs.crpix = [(width + 1) / 2.0, (height + 1) / 2.0]
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600.0, pixel_scale_arcsec / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    return wcs.to_header()


def cutout_fits(atlas: Atlas, object_id: str) -> bytes:
    """One object's cutout as a FITS file: the bands x H x W cube, BUNIT, band names, and a TAN WCS when the
    survey's pixel scale and the object's position are known (cutouts are centred on the object)."""
    row = _object_row(atlas, object_id, ["survey", "ra", "dec", "image", "image_shape"])
    try:
        cube = row_cube(row, fill_nonfinite=False)
    except ValueError as exc:
        raise AtlasError(f"object {object_id}: {exc}") from exc
    survey = atlas.surveys().get(row.get("survey"), {})
    bands = list(survey.get("bands", []))
    header = fits.Header()
    header["OBJECT"] = str(object_id)
    header["SURVEY"] = str(row.get("survey") or "")
    header["BUNIT"] = IMAGE_UNIT
    for i, band in enumerate(bands[: cube.shape[0]]):
        header[f"BAND{i + 1}"] = band
    scale, ra, dec = survey.get("pixel_scale"), row.get("ra"), row.get("dec")
    if scale and ra is not None and dec is not None and np.isfinite(ra) and np.isfinite(dec):
        header.update(cutout_wcs_header(ra, dec, float(scale), cube.shape[2], cube.shape[1]))
        header["PIXSCALE"] = (float(scale), "arcsec / pixel")
    else:
        header["COMMENT"] = "no WCS: the survey's pixel scale or the object's position is unknown"
    buf = io.BytesIO()
    fits.PrimaryHDU(data=cube, header=header).writeto(buf)
    return buf.getvalue()


def spectrum_fits(atlas: Atlas, object_id: str) -> bytes:
    """One object's spectrum as a FITS binary table: wavelength (Angstrom, observed frame), flux, ivar; Z in the header."""
    row = _object_row(atlas, object_id, ["survey", "redshift", "ra", "dec", "spectrum_flux", "spectrum_ivar"])
    flux = row.get("spectrum_flux")
    wave = atlas.wavelength(row.get("survey")) if row.get("survey") else None
    if flux is None or not len(flux) or wave is None or len(wave) != len(flux):
        raise AtlasError(f"object {object_id} has no spectrum on a known wavelength grid")
    ivar = row.get("spectrum_ivar")
    ivar = np.asarray(ivar, np.float32) if ivar is not None and len(ivar) == len(flux) else np.zeros(len(flux), np.float32)
    table = Table({"wavelength": np.asarray(wave, np.float64), "flux": np.asarray(flux, np.float32), "ivar": ivar})
    table["wavelength"].unit = "Angstrom"
    table["flux"].unit = SPECTRUM_FLUX_UNIT
    table["ivar"].unit = u.Unit(SPECTRUM_FLUX_UNIT, format="fits") ** -2
    hdu = fits.table_to_hdu(table)
    hdu.name = "SPECTRUM"
    hdu.header["OBJECT"] = str(object_id)
    for key, col in (("Z", "redshift"), ("RA", "ra"), ("DEC", "dec")):
        value = row.get(col)
        if value is not None and np.isfinite(value):
            hdu.header[key] = float(value)
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()

