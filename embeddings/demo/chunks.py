"""One chunk of demo objects -> an Arrow table (runs in the worker processes of the demo build)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa

from backend.imaging import thumbnail_png
from embeddings.demo import images, spectra

# Workers fork from a forkserver that imports lancedb (via `backend`) but never opens a connection.
warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)

SURVEY = "sdss-demo"

# Truth and catalogue columns stored beside the core columns (labels: never inputs to unsupervised methods).
LABEL_COLUMNS = {
    "morphology": pa.string(),
    "is_rare": pa.bool_(),
    "rare_class": pa.string(),
    "artefact": pa.string(),
    "stellar_mass": pa.float32(),
    "ssfr": pa.float32(),
    "sfr": pa.float32(),
    "rest_ur": pa.float32(),
    "mag_u": pa.float32(),
    "mag_g": pa.float32(),
    "mag_r": pa.float32(),
    "mag_i": pa.float32(),
    "mag_z": pa.float32(),
    "g_r": pa.float32(),
    "half_light_radius": pa.float32(),
    "inclination": pa.float32(),
    "psf_fwhm": pa.float32(),
    "fiber_fraction": pa.float32(),
    "catalogue_row": pa.int32(),
}


def _list_column(values: np.ndarray) -> pa.Array:
    """A [n, m] float32 array as an Arrow list<float32> column without per-row Python objects."""
    n, m = values.shape
    flat = pa.array(np.ascontiguousarray(values, np.float32).ravel(), pa.float32())
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * m), flat)


def make_chunk(task: tuple[pd.DataFrame, int]) -> pa.Table:
    """Render the cutouts, spectra and thumbnails of one chunk of objects as an Arrow table."""
    params, seed = task
    n = len(params)
    flux, ivar, _ = spectra.synthesize(params, seed)
    cubes = np.stack([images.render(row, seed) for row in params.to_dict("records")])
    thumbs = [thumbnail_png(cube, list(images.BANDS)) for cube in cubes]
    shape = pa.array([[3, images.STAMP, images.STAMP]] * n, pa.list_(pa.int32()))
    columns = {
        "object_id": pa.array(params["object_id"].tolist(), pa.string()),
        "survey": pa.array([SURVEY] * n, pa.string()),
        "ra": pa.array(params["ra"].to_numpy(np.float64)),
        "dec": pa.array(params["dec"].to_numpy(np.float64)),
        "redshift": pa.array(params["redshift"].to_numpy(np.float32)),
        "split": pa.array(params["split"].tolist(), pa.string()),
        "image": _list_column(cubes.reshape(n, -1)),
        "image_shape": shape,
        "spectrum_flux": _list_column(flux),
        "spectrum_ivar": _list_column(ivar),
        "thumbnail": pa.array(thumbs, pa.binary()),
        "source": pa.array([f"kcorrect:gst_tests_small.fits#{r}" for r in params["row"]], pa.string()),
    }
    for name, typ in LABEL_COLUMNS.items():
        src = params["row"] if name == "catalogue_row" else params[name]
        columns[name] = pa.array(src.to_numpy(), typ, from_pandas=True)
    return pa.table(columns)


