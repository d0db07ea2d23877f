"""A hostile-input corpus: small files that try to read outside themselves, exhaust memory, or carry bad values.

Each writer returns the path it wrote; `corpus(folder)` writes them all. Used by test_ingest_hostile.py and
test_hostile_corpus.py.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from astropy.io import fits

from embeddings.ingest.samples import galaxy_cube, write_mmu_legacysurvey_h5, write_sdss_spec

SECRET = np.array([1234.5, 6789.25, 4242.125], np.float32)  # what a "server file" holds; must never reach the atlas


def secret_file(folder: Path) -> Path:
    """A file outside any upload whose bytes an attacker wants (three distinctive floats)."""
    path = folder / "server_secret.bin"
    path.write_bytes(SECRET.tobytes())
    return path


def _mmu_base(f: h5py.File, n: int, ra: np.ndarray | None = None, dec: np.ndarray | None = None) -> None:
    rng = np.random.default_rng(0)
    f.create_dataset("object_id", data=np.array([f"h-{i}".encode() for i in range(n)]))
    f.create_dataset("ra", data=np.linspace(30.0, 30.1, n) if ra is None else ra)
    f.create_dataset("dec", data=np.full(n, -5.0) if dec is None else dec)
    f.create_dataset("image_array", data=np.stack([galaxy_cube(rng, 3, 16) for _ in range(n)]))
    f.create_dataset("image_band", data=np.array([[b"g", b"r", b"z"]] * n))


def external_storage_h5(path: Path, secret: Path) -> Path:
    """MMU layout whose label column EBV keeps its bytes in another file (HDF5 external raw storage)."""
    with h5py.File(path, "w") as f:
        _mmu_base(f, len(SECRET))
        f.create_dataset("EBV", shape=(len(SECRET),), dtype="f4", external=[(str(secret), 0, SECRET.nbytes)])
    return path


def virtual_h5(path: Path, secret_h5: Path) -> Path:
    """MMU layout whose redshift column Z is a virtual dataset mapping another HDF5 file."""
    with h5py.File(secret_h5, "w") as f:
        f.create_dataset("data", data=SECRET)
    with h5py.File(path, "w") as f:
        _mmu_base(f, len(SECRET))
        layout = h5py.VirtualLayout(shape=(len(SECRET),), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret_h5), "data", shape=(len(SECRET),))
        f.create_virtual_dataset("Z", layout)
    return path


def external_link_h5(path: Path, secret_h5: Path) -> Path:
    """MMU layout with a label column that is an external link into another HDF5 file."""
    if not secret_h5.exists():
        with h5py.File(secret_h5, "w") as f:
            f.create_dataset("data", data=SECRET)
    with h5py.File(path, "w") as f:
        _mmu_base(f, len(SECRET))
        f["FLUX_G"] = h5py.ExternalLink(str(secret_h5), "/data")
    return path


def huge_rows_h5(path: Path) -> Path:
    """A few-KB MMU file declaring two 3 x 30000 x 30000 float32 images (10 GiB a row), never written."""
    with h5py.File(path, "w") as f:
        f.create_dataset("object_id", data=np.array([b"big-0", b"big-1"]))
        f.create_dataset("ra", data=np.array([1.0, 2.0]))
        f.create_dataset("dec", data=np.array([1.0, 2.0]))
        f.create_dataset("image_array", shape=(2, 3, 30000, 30000), dtype="f4", chunks=(1, 1, 256, 256))
        f.create_dataset("image_band", data=np.array([[b"g", b"r", b"z"]] * 2))
    return path


def bad_positions_h5(path: Path) -> Path:
    """MMU layout: row 0 fine, then ra=400/dec=100, dec=-95 and NaN ra."""
    with h5py.File(path, "w") as f:
        _mmu_base(f, 4, ra=np.array([31.0, 400.0, 32.0, np.nan]), dec=np.array([-5.0, 100.0, -95.0, -5.0]))
    return path


def bad_position_spectrum(path: Path) -> Path:
    """An SDSS spec-lite file whose SPECOBJ says PLUG_DEC = -95."""
    return write_sdss_spec(path, ra=33.0, dec=-95.0, z=0.1, fiber=7)


def bad_position_cutout(path: Path) -> Path:
    """A FITS cutout without WCS whose RA/DEC keywords say 400, 100."""
    hdu = fits.PrimaryHDU(galaxy_cube(np.random.default_rng(1), 3, 16))
    hdu.header["RA"], hdu.header["DEC"] = 400.0, 100.0
    hdu.header["BANDS"] = "grz"
    hdu.writeto(path, overwrite=True)
    return path


def bad_positions_csv(path: Path) -> Path:
    """A catalogue without ids: one good row, then impossible, non-numeric and out-of-range positions."""
    pd.DataFrame({"ra": ["34.0", "400", "abc", "35.0"], "dec": ["-5.0", "100", "1.0", "-95"],
                  "note": ["ok", "far", "text", "south"]}).to_csv(path, index=False)
    return path


def type_clash_csv(path: Path, ids: list[str]) -> Path:
    """A catalogue joined by id whose `redshift_flag` column is text where the atlas stores numbers."""
    pd.DataFrame({"object_id": ids, "redshift_flag": ["bad"] + ["x"] * (len(ids) - 1),
                  "comment": ["fine"] * len(ids)}).to_csv(path, index=False)
    return path


def markdown_csv(path: Path, ids: list[str]) -> Path:
    """A catalogue whose label value is a Markdown image pointing at another host (a beacon)."""
    pd.DataFrame({"object_id": ids, "remark": ["![x](http://beacon.example/p.png) **bold**"] * len(ids)}).to_csv(
        path, index=False)
    return path


def truncated_h5(path: Path) -> Path:
    """A real MMU file cut to its first half."""
    full = write_mmu_legacysurvey_h5(path.with_suffix(".full.h5"), 4, size=32)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


def truncated_fits(path: Path) -> Path:
    """A FITS spectrum cut in the middle of its data."""
    full = write_sdss_spec(path.with_suffix(".full.fits"), ra=36.0, dec=1.0, z=0.1)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    full.unlink()
    return path


def corpus(folder: Path, ids: list[str]) -> dict[str, Path]:
    """Write every hostile file into `folder` (ids: existing atlas objects the catalogues join to)."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = secret_file(folder.parent)
    secret_h5 = folder.parent / "server_secret.h5"
    return {
        "external_storage": external_storage_h5(folder / "external.h5", secret),
        "virtual_dataset": virtual_h5(folder / "virtual.h5", secret_h5),
        "external_link": external_link_h5(folder / "extlink.h5", secret_h5),
        "huge_rows": huge_rows_h5(folder / "huge.h5"),
        "bad_positions_h5": bad_positions_h5(folder / "positions.h5"),
        "bad_position_spectrum": bad_position_spectrum(folder / "spec-bad.fits"),
        "bad_position_cutout": bad_position_cutout(folder / "cutout-bad.fits"),
        "bad_positions_csv": bad_positions_csv(folder / "positions.csv"),
        "type_clash": type_clash_csv(folder / "clash.csv", ids),
        "markdown": markdown_csv(folder / "markdown.csv", ids),
        "truncated_h5": truncated_h5(folder / "truncated.h5"),
        "truncated_fits": truncated_fits(folder / "truncated.fits"),
        "huge_fits": huge_fits_gz(folder / "huge.fits.gz"),
        "huge_png": huge_png(folder / "huge.png"),
    }


def huge_fits_gz(path: Path) -> Path:
    """A gzipped FITS whose header declares a 60000 x 60000 float32 image (13 GiB); the data are never written."""
    import gzip

    header = fits.Header({"SIMPLE": True, "BITPIX": -32, "NAXIS": 2, "NAXIS1": 60000, "NAXIS2": 60000})
    path.write_bytes(gzip.compress(header.tostring().encode() + b"\0" * 2880 * 4))
    return path


def huge_png(path: Path) -> Path:
    """A small PNG of 6000 x 6000 black pixels (4 GB once read as float RGB: a decompression bomb for a cutout)."""
    from PIL import Image

    Image.new("L", (6000, 6000)).save(path, optimize=True)
    return path
