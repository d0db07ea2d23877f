"""Catalogues and cross-matching: image + spectrum of one galaxy become one object; id joins; unmatched rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from embeddings.ingest import run_ingest
from embeddings.ingest.samples import galaxy_cube, write_cutout_fits, write_sdss_spec

POSITIONS = [(150.1000, 2.2000), (150.2000, 2.3000), (150.3000, 2.4000)]


def _images(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (ra, dec) in enumerate(POSITIONS):
        write_cutout_fits(folder / f"obj{i}.fits", galaxy_cube(rng, 3, 32), ra, dec, ["g", "r", "z"])
    return folder


def _spectra(folder, offset_arcsec=0.4):
    folder.mkdir()
    for i, (ra, dec) in enumerate(POSITIONS[:2]):
        write_sdss_spec(folder / f"spec{i}.fits", ra=ra + offset_arcsec / 3600, dec=dec, z=0.05 + i / 100, fiber=i + 1)
    write_sdss_spec(folder / "lonely.fits", ra=200.0, dec=-5.0, z=0.2, fiber=99)
    return folder


def test_image_then_spectrum_of_the_same_galaxy_is_one_object(tmp_path, atlas):
    run_ingest(_images(tmp_path / "img"), atlas.uri, progress=False)
    spectra = _spectra(tmp_path / "spec")
    report = run_ingest(spectra, atlas.uri, progress=False, match_radius=1.0)
    assert (report.added, report.updated) == (1, 2)
    frame = atlas.objects(["object_id", "survey", "image", "spectrum_flux", "redshift", "ra"]).set_index("object_id")
    assert len(frame) == 4
    for oid in ("obj0", "obj1"):
        assert frame.loc[oid, "image"] is not None and frame.loc[oid, "spectrum_flux"] is not None
        assert frame.loc[oid, "survey"] == "cutouts"  # the object keeps its survey and position
    assert frame.loc["obj1", "redshift"] == pytest.approx(0.06)
    assert frame.loc["obj0", "ra"] == pytest.approx(150.1, abs=1e-7)
    assert frame.loc["obj2", "spectrum_flux"] is None
    assert frame.loc["sdss-1000-52000-99", "image"] is None
    assert len(atlas.wavelength("cutouts")) == 7781  # spectra of cutout objects sit on the default DESI-like grid
    again = run_ingest(spectra, atlas.uri, progress=False, match_radius=1.0)
    assert (again.added, again.updated) == (0, 3) and atlas.count("objects") == 4


def test_match_radius_is_respected_and_unmatched_can_be_reported(tmp_path, atlas):
    run_ingest(_images(tmp_path / "img"), atlas.uri, progress=False)
    report = run_ingest(_spectra(tmp_path / "spec", offset_arcsec=3.0), atlas.uri, progress=False,
                        match_radius=1.0, unmatched="skip")
    assert report.added == report.updated == 0 and report.skip_counts == {"unmatched": 3}
    wide = run_ingest(tmp_path / "spec", atlas.uri, progress=False, match_radius=5.0, unmatched="skip")
    assert (wide.updated, wide.skip_counts) == (2, {"unmatched": 1})
    assert atlas.count("objects") == 3


def test_catalogue_cross_match_and_id_join(tmp_path, atlas):
    run_ingest(_images(tmp_path / "img"), atlas.uri, progress=False)
    cat = pd.DataFrame({
        "RA": [150.1 + 0.3 / 3600, 150.2, 10.0, 99.0],
        "Dec": [2.2, 2.3 + 0.2 / 3600, -30.0, 123.0],
        "z": [0.11, 0.12, 0.3, 0.1],
        "morph": ["spiral", "elliptical", "irregular", "bad"],
        "mass": [10.1, 11.2, np.nan, 9.0],
    })
    cat.to_csv(tmp_path / "cat.csv", index=False)
    report = run_ingest(tmp_path / "cat.csv", atlas.uri, progress=False)
    assert (report.kind, report.added, report.updated, report.skip_counts) == ("csv", 1, 2, {"bad_position": 1})
    frame = atlas.objects(["object_id", "ra", "redshift", "morph", "mass", "image"]).set_index("object_id")
    assert frame.loc["obj0", "morph"] == "spiral" and frame.loc["obj1", "mass"] == pytest.approx(11.2)
    assert frame.loc["obj0", "ra"] == pytest.approx(150.1, abs=1e-7) and frame.loc["obj0", "image"] is not None
    new_id = "J010.00000-30.00000"
    assert frame.loc[new_id, "morph"] == "irregular" and frame.loc[new_id, "redshift"] == pytest.approx(0.3)

    pd.DataFrame({"object_id": ["obj2", "nope"], "ra": [150.3, 1.0], "dec": [2.4, 1.0], "label": [7, 8]}).to_parquet(
        tmp_path / "ids.parquet")
    joined = run_ingest(tmp_path / "ids.parquet", atlas.uri, progress=False, unmatched="skip")
    assert (joined.kind, joined.updated, joined.skip_counts) == ("parquet", 1, {"unmatched": 1})
    assert atlas.get_objects(["obj2"], ["label"])["label"].iloc[0] == 7


def test_cli_ingest_prints_the_report(tmp_path):
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = _spectra(tmp_path / "spec")
    write_sdss_spec(folder / "twin.fits", ra=1.0, dec=1.0, z=0.1, fiber=1)  # duplicate id of spec0
    env = {**os.environ, "PYTHONPATH": repo}
    proc = subprocess.run([sys.executable, "-m", "embeddings", "ingest", str(folder), "--atlas", str(tmp_path / "a"),
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=repo, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "3 added, 0 updated, 1 skipped" in proc.stdout and "duplicate_id" in proc.stdout and "twin.fits" in proc.stdout
