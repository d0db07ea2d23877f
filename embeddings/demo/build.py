"""Build the SDSS-10k demo atlas: real catalogue rows, GalSim cutouts and synthetic DESI-like spectra."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pyarrow as pa
from tqdm import tqdm

from backend.schema import OBJECTS
from backend.spectra import desi_wavelength
from backend.store import Atlas, open_atlas
from embeddings.demo import images, spectra
from embeddings.demo.catalogue import load_catalogue
from embeddings.demo.chunks import SURVEY, make_chunk
from embeddings.demo.population import choose_subset, draw_population
from embeddings.demo.sed import fit_seds

CHUNK_ROWS = 100  # objects per worker task
WRITE_ROWS = 1000  # objects per upsert
DESCRIPTION = (
    "SDSS-10k demo: 10,000 real SDSS galaxies (positions, redshifts, ugriz photometry from kcorrect's "
    "gst_tests_small.fits) with synthetic g,r,z GalSim cutouts (Legacy Survey pixel scale) and synthetic "
    "DESI-like spectra from kcorrect SED fits; planted rare classes with ground truth. See docs/demo-survey.md."
)


def _tasks(subset: pd.DataFrame, seed: int) -> Iterator[tuple[pd.DataFrame, int]]:
    for start in range(0, len(subset), CHUNK_ROWS):
        yield subset.iloc[start : start + CHUNK_ROWS], seed


def _warm_worker() -> None:
    """Build the per-process caches (kcorrect model, spectral templates) once per worker."""
    spectra.spectrum_model()


def build_demo(atlas_uri: str, n: int = 10000, seed: int = 0, workers: int = 2, progress: bool = True) -> Atlas:
    """Write the demo `objects` (upsert by object_id) into the atlas at `atlas_uri`; deterministic for a seed."""
    if n < 1:
        raise ValueError(f"n must be at least 1 (got {n})")
    started = time.perf_counter()
    cat = load_catalogue()
    maggies, ivar = cat.maggies()
    fit = fit_seds(cat.redshift, maggies, ivar)
    subset = choose_subset(draw_population(cat, fit, seed), n, seed).reset_index(drop=True)

    atlas = open_atlas(atlas_uri, create=True)
    atlas.register_survey(
        SURVEY,
        bands=list(images.BANDS),
        pixel_scale=images.PIXEL_SCALE,
        image_shape=[len(images.BANDS), images.STAMP, images.STAMP],
        wavelength=desi_wavelength(),
        description=DESCRIPTION,
    )
    bar = tqdm(total=len(subset), unit="obj", desc="demo objects", disable=not progress)
    pending: list[pa.Table] = []

    def flush() -> None:
        if pending:
            atlas.upsert(OBJECTS, pa.concat_tables(pending))
            pending.clear()

    def consume(tables: Iterator[pa.Table]) -> None:
        for table in tables:
            pending.append(table)
            bar.update(table.num_rows)
            if sum(t.num_rows for t in pending) >= WRITE_ROWS:
                flush()
        flush()

    if workers > 1 and len(subset) > CHUNK_ROWS:
        # forkserver: workers fork from a clean preloaded server, never from this process (LanceDB threads).
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["embeddings.demo.chunks"])
        with ctx.Pool(workers, initializer=_warm_worker) as pool:
            consume(pool.imap(make_chunk, _tasks(subset, seed)))
    else:
        consume(map(make_chunk, _tasks(subset, seed)))
    bar.close()
    atlas.optimize(OBJECTS, keep_versions_newer_than=timedelta(0))  # a fresh build: nobody reads old versions
    atlas.set_meta(
        "demo",
        {"survey": SURVEY, "n": int(len(subset)), "seed": int(seed), "build_seconds": round(time.perf_counter() - started, 2)},
    )
    return atlas
