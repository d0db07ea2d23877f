"""A small real-image atlas: sources detected with sep in the Hubble Deep Field image shipped with scikit-image.

The image is scikit-image's 8-bit RGB JPEG of the HDF (a colour composite of the WFPC2 exposures), not
calibrated FITS: the three "bands" are the JPEG's R, G, B channels, named after the filters that roughly
feed them. Sky positions come from a simple tangent-plane WCS around the real HDF centre with an
approximate 0.04"/px scale, north up and east left; the real field's orientation differs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import sep
from astropy.wcs import WCS
from tqdm import tqdm

from backend.imaging import png_bytes
from backend.schema import OBJECTS
from backend.store import Atlas, open_atlas
from embeddings.demo.catalogue import split_for

SURVEY = "hubble-deep-field"
BANDS = ["f814w", "f606w", "f450w"]  # JPEG R, G, B channels (approximately these WFPC2 filters)
PIXEL_SCALE = 0.04  # arcsec / pixel, approximate
CUTOUT = 64
HDF_RA, HDF_DEC = 189.2058333, 62.2161111  # 12h36m49.4s, +62d12m58s
DETECT_SIGMA = 3.0
MIN_AREA = 30


def hdf_wcs(shape: tuple[int, int]) -> WCS:
    """Tangent-plane WCS centred on the HDF, 0.04"/px, north up, east left (FITS pixel convention)."""
    height, width = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [HDF_RA, HDF_DEC]
    wcs.wcs.crpix = [(width + 1) / 2, (height + 1) / 2]
    wcs.wcs.cdelt = [-PIXEL_SCALE / 3600.0, PIXEL_SCALE / 3600.0]
    return wcs


def detect_sources(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sep background subtraction and extraction (with deblending) on the channel mean; returns (objects, cube)."""
    cube = np.ascontiguousarray(np.moveaxis(rgb.astype(np.float64), -1, 0))  # [3, H, W]
    grey = np.ascontiguousarray(cube.mean(axis=0))
    bkg = sep.Background(grey, bw=64, bh=64, fw=3, fh=3)
    objects = sep.extract(grey - bkg.back(), DETECT_SIGMA, err=bkg.globalrms, minarea=MIN_AREA,
                          deblend_nthresh=32, deblend_cont=0.005, clean=True)
    sub = np.stack([c - sep.Background(np.ascontiguousarray(c), bw=64, bh=64, fw=3, fh=3).back() for c in cube])
    return objects, sub.astype(np.float32)


def _cutout(cube: np.ndarray, x: float, y: float) -> tuple[np.ndarray, bool]:
    """A CUTOUT x CUTOUT square centred on (x, y), zero-padded past the image edge."""
    half = CUTOUT // 2
    xc, yc = int(round(x)), int(round(y))
    out = np.zeros((cube.shape[0], CUTOUT, CUTOUT), np.float32)
    y0, x0 = yc - half, xc - half
    ys, xs = slice(max(y0, 0), min(y0 + CUTOUT, cube.shape[1])), slice(max(x0, 0), min(x0 + CUTOUT, cube.shape[2]))
    out[:, ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = cube[:, ys, xs]
    padded = ys.stop - ys.start < CUTOUT or xs.stop - xs.start < CUTOUT
    return out, padded


def build_hdf_atlas(atlas_uri: str, progress: bool = True) -> Atlas:
    """Detect HDF sources, cut a 64x64 RGB cube for each, and upsert them into the atlas's objects table."""
    from skimage.data import hubble_deep_field

    rgb = hubble_deep_field()
    objects, cube = detect_sources(rgb)
    wcs = hdf_wcs(rgb.shape[:2])
    height = rgb.shape[0]
    # numpy row y (top-down, 0-based) -> FITS pixel (bottom-up, 1-based)
    ra, dec = wcs.all_pix2world(objects["x"] + 1, height - objects["y"], 1)
    rows = []
    for i, obj in enumerate(tqdm(objects, desc="hdf sources", unit="src", disable=not progress)):
        image, padded = _cutout(cube, obj["x"], obj["y"])
        raw, _ = _cutout(np.moveaxis(rgb, -1, 0).astype(np.float32), obj["x"], obj["y"])
        oid = f"hdf-{i:04d}"
        rows.append(
            {
                "object_id": oid,
                "survey": SURVEY,
                "ra": float(ra[i]),
                "dec": float(dec[i]),
                "redshift": None,
                "split": split_for(oid),
                "image": image.ravel(),
                "image_shape": [len(BANDS), CUTOUT, CUTOUT],
                "spectrum_flux": None,
                "spectrum_ivar": None,
                "thumbnail": png_bytes(np.moveaxis(raw, 0, -1) / 255.0, size=96),
                "source": "skimage.data.hubble_deep_field (8-bit RGB JPEG)",
                "x_pixel": float(obj["x"]),
                "y_pixel": float(obj["y"]),
                "sep_flux": float(obj["flux"]),
                "a_pixel": float(obj["a"]),
                "b_pixel": float(obj["b"]),
                "theta": float(obj["theta"]),
                "npix": int(obj["npix"]),
                "edge_padded": bool(padded),
            }
        )
    atlas = open_atlas(atlas_uri, create=True)
    atlas.register_survey(
        SURVEY,
        bands=BANDS,
        pixel_scale=PIXEL_SCALE,
        image_shape=[len(BANDS), CUTOUT, CUTOUT],
        description=(
            "Hubble Deep Field (scikit-image's RGB JPEG): sep-detected sources, 64x64 cutouts of the background-"
            "subtracted R,G,B channels (JPEG units, not calibrated flux); approximate tangent-plane WCS, 0.04\"/px."
        ),
    )
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index("image"), "image",
                             pa.array([r["image"] for r in rows], pa.list_(pa.float32())))
    atlas.upsert(OBJECTS, table)
    atlas.optimize(OBJECTS)
    return atlas
