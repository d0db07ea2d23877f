"""Spectral indices (D4000n, H-delta_A, emission EWs) measure what their definitions say, and land in the catalogue."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from backend.features import SPECTRAL_INDICES, feature_sets
from backend.spectra import desi_wavelength
from backend.store import Atlas, open_atlas
from embeddings import spectral_indices

WAVE = desi_wavelength()
Z = 0.1


def _gaussian(rest_centre: float, ew: float, sigma: float = 3.0, z: float = Z) -> np.ndarray:
    """A line of rest-frame equivalent width `ew` (A, positive = emission) on a unit continuum, as F_lambda."""
    rest = WAVE / (1 + z)
    return ew * np.exp(-0.5 * ((rest - rest_centre) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def _spectrum(*lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flux = 1.0 + sum(lines, np.zeros_like(WAVE))
    return flux, np.full_like(WAVE, 100.0)


def test_balmer_absorption_and_emission_equivalent_widths_come_back():
    flux, ivar = _spectrum(_gaussian(4102.89, -5.0), _gaussian(6564.61, 20.0, sigma=2.0), _gaussian(5008.24, 8.0, sigma=2.0))
    m = spectral_indices.measure(WAVE, flux, ivar, Z)
    assert abs(m["line_hdelta_a"] - 5.0) < 0.3  # absorption reads positive
    assert abs(m["line_ew_halpha"] - 20.0) < 1.0  # emission reads positive
    assert abs(m["line_ew_oiii"] - 8.0) < 0.5
    assert abs(m["line_ew_nii"]) < 0.5 and abs(m["line_ew_hbeta"]) < 0.2  # nothing planted there
    assert abs(m["line_d4000n"] - (4050.0 / 3900.0) ** 2) < 0.01  # a flat F_lambda rises in F_nu


def test_a_4000_angstrom_break_is_the_ratio_of_f_nu_across_it():
    rest = WAVE / (1 + Z)
    f_nu = np.where(rest > 3975.0, 1.8, 1.0)
    m = spectral_indices.measure(WAVE, f_nu / rest**2, np.ones_like(WAVE), Z)
    assert abs(m["line_d4000n"] - 1.8) < 1e-6


def test_bands_off_the_grid_or_masked_give_nan_and_a_missing_redshift_is_an_error():
    flux, ivar = _spectrum(_gaussian(4102.89, -5.0, z=0.6))
    far = spectral_indices.measure(WAVE, flux, ivar, 0.6)
    assert np.isnan(far["line_ew_halpha"]) and np.isnan(far["line_ew_nii"])  # H-alpha at 10,500 A: off the grid
    assert abs(far["line_hdelta_a"] - 5.0) < 0.3
    rest = WAVE / (1 + Z)
    flux, ivar = _spectrum()
    ivar[(rest > 4080) & (rest < 4125)] = 0.0  # the H-delta band masked
    masked = spectral_indices.measure(WAVE, flux, ivar, Z)
    assert np.isnan(masked["line_hdelta_a"]) and np.isfinite(masked["line_d4000n"])
    try:
        spectral_indices.measure(WAVE, flux, ivar, float("nan"))
    except ValueError as exc:
        assert "redshift" in str(exc)
    else:
        raise AssertionError("a spectrum without a redshift was measured")


def _spectra_atlas(atlas: Atlas) -> None:
    """40 spectra of a survey without images: three strong H-delta absorbers, the last object without a redshift."""
    rng = np.random.default_rng(0)
    atlas.register_survey("toy", wavelength=WAVE)
    rows = []
    for i in range(40):
        ew = -6.0 if i < 3 else rng.normal(0.0, 0.5)
        flux, ivar = _spectrum(_gaussian(4102.89, ew), _gaussian(6564.61, rng.uniform(0, 4)))
        flux = flux + rng.normal(0, 0.01, len(WAVE))
        rows.append({"object_id": f"s{i:03d}", "survey": "toy", "ra": 10.0 + i, "dec": 0.0,
                     "redshift": None if i == 39 else Z, "spectrum_flux": flux.astype(np.float32),
                     "spectrum_ivar": ivar.astype(np.float32)})
    atlas.upsert("objects", pd.DataFrame(rows))


def test_the_catalogue_stores_line_columns_and_they_become_a_ranked_feature_set(atlas):
    _spectra_atlas(atlas)
    messages: list[str] = []
    frame = spectral_indices.write_catalogue(atlas, say=messages.append)
    assert len(frame) == 40 and messages == ["spectral indices: s039: no usable redshift (nan)"]
    stored = atlas.objects(["object_id", *spectral_indices.COLUMNS]).set_index("object_id").sort_index()
    assert stored.loc[["s000", "s001", "s002"], "line_hdelta_a"].min() > 5.0
    assert stored.drop(index=["s000", "s001", "s002", "s039"])["line_hdelta_a"].abs().max() < 2.5
    assert stored.loc["s039"].isna().all()
    fs = feature_sets(atlas)[SPECTRAL_INDICES]
    assert fs.parameters and "s039" not in fs.ids and fs.X.shape == (39, len(spectral_indices.COLUMNS))


def test_measure_command_fills_the_columns_of_an_ingested_atlas_and_says_what_it_skipped(atlas, capsys, monkeypatch):
    from embeddings.cli import main as cli_main

    _spectra_atlas(atlas)
    monkeypatch.setattr(sys, "argv", ["python -m embeddings", "measure", "--atlas", atlas.uri, "--no-progress"])
    with pytest.raises(SystemExit) as exited:
        cli_main()
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "spectral indices: 39 of 40 spectra measured" in out and "s039: no usable redshift" in out
    assert "morphology:" not in out  # no cutouts: nothing to measure, no message per object
    assert "no embedding space yet" in out
    stored = open_atlas(atlas.uri).objects(["object_id", "line_hdelta_a"]).set_index("object_id")["line_hdelta_a"]
    assert stored.loc[["s000", "s001", "s002"]].min() > 5.0 and stored.notna().sum() == 39
    empty = open_atlas(atlas.uri + "-empty", create=True)
    monkeypatch.setattr(sys, "argv", ["python -m embeddings", "measure", "--atlas", empty.uri])
    with pytest.raises(SystemExit) as exited:
        cli_main()
    assert exited.value.code == 2 and "has no objects" in capsys.readouterr().err
