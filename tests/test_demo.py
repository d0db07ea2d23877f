"""The SDSS-10k demo survey: real catalogue rows, GalSim cutouts, synthetic spectra, planted rare classes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from backend.spectra import desi_wavelength
from backend.store import Atlas, open_atlas
from embeddings.demo.build import build_demo
from embeddings.demo.catalogue import catalogue_path, load_catalogue, object_id, split_for
from embeddings.demo.images import render
from embeddings.demo.population import ARTEFACT_KINDS, RARE_CLASSES, draw_population
from embeddings.demo.sed import fit_seds, kcorrect_model
from embeddings.demo.spectra import synthesize
from tests.conftest import REPO

N = 200
HALPHA = 6564.61


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Atlas, pd.DataFrame]:
    """One small demo build per module (serial), read back whole."""
    atlas = build_demo(str(tmp_path_factory.mktemp("demo") / "atlas"), n=N, seed=0, workers=1, progress=False)
    return atlas, atlas.objects().sort_values("object_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def demo(built) -> pd.DataFrame:
    return built[1]


def _digest(frame: pd.DataFrame) -> dict[str, str]:
    out = {}
    for _, row in frame.sort_values("object_id").iterrows():
        h = hashlib.sha256()
        for col in ("image", "spectrum_flux", "spectrum_ivar"):
            h.update(np.asarray(row[col], np.float32).tobytes())
        out[row["object_id"]] = h.hexdigest()
    return out


def test_positions_redshifts_and_photometry_are_the_real_catalogue_rows(demo):
    with fits.open(catalogue_path()) as hdul:
        data = hdul[1].data
        rows = demo["catalogue_row"].to_numpy()
        assert len(demo) == N and demo["object_id"].is_unique
        assert list(demo["object_id"]) == [object_id(r) for r in rows]
        np.testing.assert_allclose(demo["ra"], data["RA"][rows])
        np.testing.assert_allclose(demo["dec"], data["DEC"][rows])
        np.testing.assert_allclose(demo["redshift"], data["Z"][rows], rtol=1e-6)
        mag_r = 22.5 - 2.5 * np.log10(data["MODELFLUX"][rows, 2])
        np.testing.assert_allclose(demo["mag_r"], mag_r, rtol=1e-5)


def test_every_rare_class_is_planted_with_consistent_labels(demo):
    classes = set(demo["rare_class"]) - {""}
    assert classes == set(RARE_CLASSES)
    assert (demo["is_rare"] == (demo["rare_class"] != "")).all()
    assert set(demo.loc[demo["rare_class"] == "artefact", "artefact"]) == set(ARTEFACT_KINDS)
    assert (demo.loc[demo["rare_class"] != "artefact", "artefact"] == "").all()
    for cls in ("ring", "merger", "lens"):
        assert (demo.loc[demo["rare_class"] == cls, "morphology"] == cls).all()
    assert (demo.loc[demo["rare_class"] == "dust_lane", "morphology"] == "edge_on").all()


def test_full_catalogue_rare_fraction_is_about_two_percent():
    cat = load_catalogue()
    maggies, ivar = cat.maggies()
    pop = draw_population(cat, fit_seds(cat.redshift, maggies, ivar), seed=0)
    counts = pop["rare_class"].value_counts()
    assert all(counts[c] >= 30 for c in RARE_CLASSES)
    assert 0.015 <= pop["is_rare"].mean() <= 0.03


def test_survey_metadata_and_image_cubes(built):
    atlas, demo = built
    meta = atlas.surveys()["sdss-demo"]
    assert meta["bands"] == ["g", "r", "z"]
    assert meta["pixel_scale"] == pytest.approx(0.262)
    assert meta["image_shape"] == [3, 64, 64]
    np.testing.assert_allclose(atlas.wavelength("sdss-demo"), desi_wavelength())
    for shape, image in zip(demo["image_shape"], demo["image"], strict=True):
        assert list(shape) == [3, 64, 64] and len(image) == 3 * 64 * 64
    assert all(bytes(t[:8]) == b"\x89PNG\r\n\x1a\n" for t in demo["thumbnail"])


def test_image_flux_matches_the_real_photometry(demo):
    """The r-band light in a compact normal galaxy's cutout is its catalogue r flux (same SED)."""
    sel = demo[(demo["rare_class"] == "") & (demo["half_light_radius"] < 2.0)]
    assert len(sel) > 20
    measured = np.array([np.asarray(img).reshape(3, 64, 64)[1].sum() for img in sel["image"]])
    catalogue = 10 ** ((22.5 - sel["mag_r"].to_numpy()) / 2.5)
    ratio = measured / catalogue
    assert 0.75 < np.median(ratio) < 1.25
    assert np.mean(np.abs(np.log(ratio)) < np.log(1.5)) > 0.9


def test_spectra_lie_on_the_grid_with_honest_ivar(demo):
    flux = np.stack(demo["spectrum_flux"].to_numpy())
    ivar = np.stack(demo["spectrum_ivar"].to_numpy())
    assert flux.shape == ivar.shape == (N, 7781)
    assert np.isfinite(flux).all() and np.isfinite(ivar).all() and (ivar > 0).all()
    # ivar describes the noise actually added: red galaxies' continuum residuals have unit variance
    smooth = np.stack([np.convolve(f, np.ones(25) / 25, mode="same") for f in flux])
    pull = ((flux - smooth) * np.sqrt(ivar))[:, 100:-100]
    assert 0.8 < np.std(pull) < 1.25


def _line_excess(flux, ivar, wave, centre, half=4.0, side=(25.0, 60.0)):
    """Line flux in |lambda - centre| < half over the continuum from side bands, in units of its noise."""
    core = np.abs(wave - centre) < half
    side = (np.abs(wave - centre) > side[0]) & (np.abs(wave - centre) < side[1])
    cont = np.median(flux[side])
    signal = np.sum(flux[core] - cont)
    noise = np.sqrt(np.sum(1.0 / ivar[core]))
    return signal / noise


def test_star_forming_galaxies_show_halpha_at_the_redshifted_wavelength(demo):
    wave = desi_wavelength()
    sf = demo[(demo["ssfr"] > -10.4) & (demo["redshift"] < 0.45) & (demo["rare_class"] == "")]
    quiet = demo[(demo["ssfr"] <= -12.5) & (demo["redshift"] < 0.45) & (demo["rare_class"] == "")]
    assert len(sf) >= 10 and len(quiet) >= 10

    def excess(rows, shift=0.0):
        return np.array([_line_excess(np.asarray(r.spectrum_flux), np.asarray(r.spectrum_ivar), wave,
                                      HALPHA * (1 + r.redshift) + shift) for r in rows.itertuples()])

    assert np.mean(excess(sf) > 5) > 0.8
    assert np.median(excess(sf, shift=150.0)) < 3  # nothing special 150 A away
    assert np.median(excess(quiet)) < 3


def test_rare_spectra_are_spectrally_distinct(demo):
    wave = desi_wavelength()
    agn = demo[(demo["rare_class"] == "agn") & (demo["redshift"] < 0.45)]
    for r in agn.itertuples():
        assert _line_excess(np.asarray(r.spectrum_flux), np.asarray(r.spectrum_ivar), wave,
                            HALPHA * (1 + r.redshift), half=60.0, side=(200.0, 300.0)) > 8  # broad Halpha
    psb = demo[demo["rare_class"] == "post_starburst"]
    for r in psb.itertuples():
        flux, ivar = np.asarray(r.spectrum_flux), np.asarray(r.spectrum_ivar)
        assert _line_excess(flux, ivar, wave, 4102.89 * (1 + r.redshift), half=12.0) < -5  # H-delta absorption
        assert _line_excess(flux, ivar, wave, HALPHA * (1 + r.redshift)) < 3  # no H-alpha emission


def test_red_galaxies_are_mostly_early_types_and_blue_ones_disks(demo):
    normal = demo[demo["rare_class"] == ""]
    red = normal[normal["ssfr"] < -11]
    blue = normal[normal["ssfr"] > -10.5]
    assert red["morphology"].isin(["elliptical", "s0"]).mean() > 0.75
    assert blue["morphology"].isin(["spiral", "barred_spiral", "irregular", "edge_on"]).mean() > 0.75


def test_split_is_fixed_by_object_id(demo):
    assert (demo["split"] == [split_for(o) for o in demo["object_id"]]).all()
    ids = [object_id(r) for r in range(10_000)]
    frac = pd.Series([split_for(o) for o in ids]).value_counts(normalize=True)
    assert abs(frac["train"] - 0.8) < 0.02 and abs(frac["val"] - 0.1) < 0.02 and abs(frac["test"] - 0.1) < 0.02


def test_vectorised_fit_matches_kcorrect(demo):
    cat = load_catalogue()
    maggies, ivar = cat.maggies()
    rows = np.arange(0, 10_000, 997)
    ours = fit_seds(cat.redshift[rows], maggies[rows], ivar[rows]).coeffs
    ref = kcorrect_model().fit_coeffs(redshift=cat.redshift[rows].astype(np.float32),
                                      maggies=maggies[rows].astype(np.float32), ivar=ivar[rows].astype(np.float32))
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-6 * np.abs(ref).max())


def test_same_seed_same_objects_across_workers_and_other_seed_differs(demo, tmp_path):
    parallel = build_demo(str(tmp_path / "parallel"), n=N, seed=0, workers=2, progress=False).objects()
    assert _digest(parallel) == _digest(demo)
    seed0 = build_demo(str(tmp_path / "seed0"), n=30, seed=0, workers=1, progress=False).objects()
    seed1 = build_demo(str(tmp_path / "seed1"), n=30, seed=1, workers=1, progress=False).objects()
    assert set(seed0.loc[seed0["is_rare"], "object_id"]) != set(seed1.loc[seed1["is_rare"], "object_id"])


def test_another_seed_gives_the_same_galaxy_other_noise():
    cat = load_catalogue()
    maggies, ivar = cat.maggies()
    pop = draw_population(cat, fit_seds(cat.redshift, maggies, ivar), seed=0).iloc[[5, 50, 500]]
    flux0, ivar0, model0 = synthesize(pop, seed=0)
    flux1, ivar1, model1 = synthesize(pop, seed=1)
    np.testing.assert_array_equal(model0, model1)
    np.testing.assert_array_equal(ivar0, ivar1)
    assert not np.allclose(flux0, flux1)
    for row in pop.to_dict("records"):
        assert not np.allclose(render(row, 0), render(row, 1))


def test_cli_builds_a_tiny_demo_and_a_rebuild_upserts(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "embeddings", "demo", "--atlas", str(tmp_path / "cli"), "--n", "25", "--seed", "3",
           "--workers", "1", "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "demo: 25 objects" in done.stdout
    before = _digest(open_atlas(tmp_path / "cli").objects())
    again = build_demo(str(tmp_path / "cli"), n=25, seed=3, workers=1, progress=False).objects()
    assert len(again) == 25 and _digest(again) == before


def _border_peak(image) -> float:
    """Brightest pixel of the stamp's 3-pixel border, in robust noise units, over the bands."""
    peaks = []
    for band in np.asarray(image).reshape(3, 64, 64):
        border = np.concatenate([band[:3].ravel(), band[-3:].ravel(), band[3:-3, :3].ravel(), band[3:-3, -3:].ravel()])
        med = np.median(border)
        peaks.append((border.max() - med) / (1.4826 * np.median(np.abs(border - med))))
    return max(peaks)


def test_imaging_artefacts_cross_the_stamp_and_ordinary_compact_galaxies_do_not(demo):
    artefacts = demo[demo["rare_class"] == "artefact"]
    compact = demo[(demo["rare_class"] == "") & (demo["half_light_radius"] < 2.0)]
    assert all(_border_peak(img) > 15 for img in artefacts["image"])
    assert np.mean([_border_peak(img) < 6 for img in compact["image"]]) > 0.95
