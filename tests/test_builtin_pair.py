"""Builtin family: documented preprocessing on known inputs, safetensors loading, the three training stages reproduce a loadable file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from backend.spectra import desi_wavelength
from embeddings.builtin.train import save_pair, train
from embeddings.encoders import arp_preprocess as pp
from embeddings.encoders.base import SurveyContext
from embeddings.encoders.builtin import DEFAULT_WEIGHTS, load_pair
from embeddings.encoders.registry import available_encoders, get_encoder
from embeddings.encoders.weights import file_sha256
from embeddings.models.arp_pair import ArpPair
from tests.test_embed_job import synthetic_atlas

GRZ = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262, wavelength=desi_wavelength())
STATS = pp.PreprocessStats((0.01, 0.02, 0.04), 1.0, 0.5)


def cube_row(cube: np.ndarray) -> dict:
    return {"image": cube.astype(np.float32).ravel(), "image_shape": list(cube.shape)}


def test_image_recipe_centre_crop_band_order_and_arcsinh():
    cube = np.zeros((3, 64, 64), np.float32)
    cube[:, 32, 32] = [0.01, 0.02, 0.04]  # one softening unit in every band at the centre
    cube[0, 0, 0] = 5.0  # outside the 48 px centre crop
    x = pp.image_input(cube_row(cube), GRZ, STATS)
    assert x.shape == (3, 48, 48) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 24, 24], np.arcsinh(1.0), rtol=1e-6)
    assert np.count_nonzero(x) == 3
    # a survey storing z, r, g gets re-ordered to g, r, z
    zrg = SurveyContext(bands=("z", "r", "g"), pixel_scale=0.262)
    np.testing.assert_allclose(pp.image_input(cube_row(cube[::-1].copy()), zrg, STATS), x)
    with pytest.raises(ValueError, match="needs g, r, z"):
        pp.image_input(cube_row(cube[:2].copy()), SurveyContext(bands=("g", "x")), STATS)


def test_other_surveys_use_bands_ordered_by_wavelength_and_their_own_noise():
    rng = np.random.default_rng(0)
    cube = rng.normal(0, [[[1.0]], [[2.0]], [[4.0]]], (3, 64, 64)).astype(np.float32)
    cube[:, 30:34, 30:34] += 40.0
    hst = SurveyContext(bands=("f814w", "f606w", "f450w"), pixel_scale=0.04)  # red, green, blue as the HDF stores them
    x = pp.image_input(cube_row(cube), hst, STATS)
    assert x.shape == (3, 48, 48) and np.isfinite(x).all()
    # channel 0 is the bluest band (f450w, stored last); each band is stretched by its own noise
    native = SurveyContext(bands=("f814w", "f606w", "f450w"), pixel_scale=0.262)
    y = pp.image_input(cube_row(cube), native, STATS)
    for channel, band in enumerate((2, 1, 0)):
        noise = 1.4826 * np.median(np.abs(cube[band][8:56, 8:56] - np.median(cube[band][8:56, 8:56])))
        np.testing.assert_allclose(y[channel, 0, 0], np.arcsinh(cube[band, 8, 8] / noise), rtol=0.05)
    single = pp.image_input(cube_row(cube[:1].copy()), SurveyContext(bands=("vis",), pixel_scale=0.1), STATS)
    assert np.allclose(single[0], single[1]) and np.allclose(single[1], single[2])
    assert pp.band_wavelength("F150W") == 1500 and pp.band_wavelength("i") == 765


def test_image_resampled_to_the_training_pixel_scale_and_small_cutouts_padded():
    rng = np.random.default_rng(0)
    cube = rng.random((3, 40, 40)).astype(np.float32)
    padded = pp.raw_image(cube_row(cube), GRZ)
    assert padded.shape == (3, 48, 48) and np.all(padded[:, :4] == 0) and np.all(padded[:, 4:44, 4:44] == cube)
    coarse = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.524)  # 2x coarser -> 2x more pixels
    assert np.count_nonzero(pp.raw_image(cube_row(cube), coarse)[0]) == 48 * 48
    nan = np.full((3, 64, 64), np.nan, np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        pp.image_input(cube_row(nan), GRZ, STATS)


def test_a_page_of_cutouts_at_once_gives_the_per_row_inputs_and_reasons():
    import pyarrow as pa

    from embeddings.data import prepare_rows, prepare_table, table_rows
    from embeddings.encoders.builtin import ImagePreprocessor

    rng = np.random.default_rng(1)
    images = rng.normal(0, 0.05, (5, 3 * 64 * 64)).astype(np.float32) * np.float32(10.0) ** rng.uniform(-3, 3, (5, 1))
    images = images.astype(np.float32)
    images[1, :100] = np.nan  # a few bad pixels: set to 0
    images[2, :7000] = np.inf  # most of the cutout bad: refused with the reason
    page = pa.table({"object_id": [f"o{i}" for i in range(5)], "survey": ["grz"] * 5,
                     "image": pa.array(list(images), pa.list_(pa.float32())), "image_shape": [[3, 64, 64]] * 5})
    pre = ImagePreprocessor(STATS)
    surveys = {"grz": GRZ}
    at_once = pre.prepare_page({"image": images, "image_shape": np.tile([3, 64, 64], (5, 1))}, GRZ)
    per_row = prepare_rows(pre, table_rows(page), surveys)
    assert at_once is not None and [type(x) for x in at_once] == [type(x) for x in per_row]
    for a, b in zip(at_once, per_row, strict=True):
        if isinstance(a, ValueError):
            assert str(a) == str(b) == "image has 57% non-finite pixels"
        else:
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(at_once[0], np.arcsinh(pp._crop_or_pad(images[0].reshape(3, 64, 64), 48)
                                                      / np.asarray(STATS.image_softening, np.float32)[:, None, None]),
                               atol=3e-7, rtol=3e-7)
    # pages the fast path cannot take (another survey's bands, resampling, mixed surveys) go row by row
    hst = SurveyContext(bands=("f814w", "f606w", "f450w"), pixel_scale=0.04)
    assert pre.prepare_page({"image": images, "image_shape": np.tile([3, 64, 64], (5, 1))}, hst) is None
    mixed = page.set_column(1, "survey", pa.array(["grz", "hst", "grz", "grz", "hst"]))
    fallback = prepare_table(pre, mixed, {"grz": GRZ, "hst": hst})
    np.testing.assert_array_equal(fallback[0], per_row[0])
    np.testing.assert_array_equal(fallback[1], pp.image_input(table_rows(mixed)[1], hst, STATS))


def test_spectrum_recipe_binning_ivar_weighting_and_channels():
    flux = np.full(7781, 4.0, np.float32)
    ivar = np.full(7781, 1.0, np.float32)
    flux[:8] = [0, 0, 0, 0, 100, 100, 100, 100]
    ivar[:8] = [1, 1, 1, 1, 0, 0, 0, 0]  # masked pixels must not leak into the bin
    ivar[8:16] = 0  # a bin with no data
    x = pp.spectrum_input({"spectrum_flux": flux, "spectrum_ivar": ivar}, GRZ, STATS)
    assert x.shape == (3, 972)
    assert x[0, 0] == 0.0 and np.allclose(x[0, 2:], np.arcsinh(1.0))  # flux / median |flux| = 1
    assert x[1, 1] == 0.0 and x[0, 1] == 0.0  # no data: zero flux and zero weight
    np.testing.assert_allclose(x[1, 2], np.arcsinh(4.0 * np.sqrt(8.0)) / 4.0, rtol=1e-6)
    np.testing.assert_allclose(x[2], (np.log10(4.0) - 1.0) / 0.5, rtol=1e-6)


def test_spectrum_on_another_grid_is_interpolated_and_empty_spectra_rejected():
    grid = np.linspace(3000, 10000, 3000)
    other = SurveyContext(wavelength=grid)
    row = {"spectrum_flux": np.full(3000, 2.0, np.float32), "spectrum_ivar": np.ones(3000, np.float32)}
    x = pp.spectrum_input(row, other, STATS)
    np.testing.assert_allclose(x[0], np.arcsinh(1.0), rtol=1e-6)
    with pytest.raises(ValueError, match="only"):
        pp.spectrum_input({"spectrum_flux": np.ones(7781), "spectrum_ivar": np.zeros(7781)}, GRZ, STATS)
    with pytest.raises(ValueError, match="no spectrum"):
        pp.spectrum_input({"spectrum_flux": None}, GRZ, STATS)


def test_registered_family_gives_two_unimodal_spaces_and_one_aligned_pair():
    specs = available_encoders()
    assert specs["arp-pair-image"].modality == "image" and specs["arp-pair-spectrum"].modality == "spectrum"
    assert specs["arp-morphology"].modality == "image" and specs["arp-spectrum"].modality == "spectrum"
    img, spec = get_encoder("arp-pair-image", random_init=True), get_encoder("arp-pair-spectrum", random_init=True)
    assert img.aligned_group == spec.aligned_group == "arp-pair" and img.dim == spec.dim == 128
    morph, unispec = get_encoder("arp-morphology", random_init=True), get_encoder("arp-spectrum", random_init=True)
    assert morph.aligned_group == unispec.aligned_group == ""  # never compared across modalities
    assert (morph.name, morph.dim, unispec.name, unispec.dim) == ("arp-morphology", 256, "arp-spectrum", 32)
    assert specs["arp-morphology"].weights.dim == 256


def test_weights_round_trip_through_safetensors_and_refuse_other_preprocessing(tmp_path):
    model = ArpPair().eval()
    path = save_pair(model, STATS, tmp_path / "w.safetensors")
    enc = get_encoder("arp-pair-spectrum", checkpoint=str(path))
    assert enc.weights_revision == "sha256:" + file_sha256(path)[:16] and enc.stats == STATS
    x = torch.randn(4, 3, 972)
    with torch.inference_mode():
        np.testing.assert_allclose(enc.embed(x), model.pair_spectrum(x).numpy(), atol=1e-6)
        uni = get_encoder("arp-spectrum", checkpoint=str(path))
        np.testing.assert_allclose(uni.embed(x), model.spectrum(x).numpy(), atol=1e-6)
    state = {k: v for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "old.safetensors"), metadata={"preprocess_version": "arp-pair-v0",
                                                                  "config": "{}", "stats": "{}"})
    with pytest.raises(ValueError, match="retrain"):
        load_pair(tmp_path / "old.safetensors")
    with pytest.raises(FileNotFoundError, match="train-builtin"):
        load_pair(tmp_path / "missing.safetensors")


def test_train_builtin_runs_three_stages_and_writes_loadable_weights_and_curves(tmp_path):
    atlas = synthetic_atlas(tmp_path / "a", 240, size=48)
    out = tmp_path / "pair.safetensors"
    summary = train(atlas.uri, out=out, budget_scale=0.05, progress=False)
    assert summary["n_train"] == 80
    assert [s["stage"] for s in summary["stages"]] == ["image-simclr", "spectrum-masked", "alignment"]
    assert all(s["epochs_run"] >= 1 for s in summary["stages"])
    assert set(summary["test_metrics"]) >= {"image_redshift_r2", "spectrum_redshift_r2", "cross_modal_median_rank",
                                            "spectrum_space_redshift_r2", "morphology_space_redshift_r2"}
    with safe_open(str(out), framework="pt") as fh:
        stats = json.loads(fh.metadata()["stats"])
    assert 0.005 < stats["image_softening"][0] < 0.02  # the synthetic noise level (sigma 0.01)
    row = cube_row(np.zeros((3, 48, 48)))
    for name, dim in (("arp-pair-image", 128), ("arp-morphology", 256)):
        enc = get_encoder(name, checkpoint=str(out))
        vec = enc.embed(torch.from_numpy(enc.preprocess(row, GRZ))[None])
        assert vec.shape == (1, dim) and np.isfinite(vec).all()
        if name == "arp-pair-image":
            assert np.isclose(np.linalg.norm(vec), 1, atol=1e-5)
    written = json.loads(out.with_suffix(".metrics.json").read_text())
    assert written["n_val"] == 80 and {h["stage"] for h in written["history"]} == {s["stage"] for s in summary["stages"]}
    # re-aligning keeps both pretrained towers (and their curves) and redoes only the heads
    again = train(atlas.uri, out=tmp_path / "re.safetensors", budget_scale=0.05, pretrained=out, progress=False)
    assert [s["stage"] for s in again["stages"]] == [s["stage"] for s in summary["stages"]]
    assert again["stages"][0]["from"] == "pair.safetensors"
    first, second = get_encoder("arp-morphology", checkpoint=str(out)), get_encoder("arp-morphology", checkpoint=str(tmp_path / "re.safetensors"))
    x = torch.randn(2, 3, 48, 48)
    np.testing.assert_allclose(first.embed(x), second.embed(x), atol=1e-4)


def test_committed_weights_load_deterministically():
    a, b = get_encoder("arp-pair-image"), get_encoder("arp-pair-image")
    x = torch.randn(3, 3, 48, 48)
    np.testing.assert_array_equal(a.embed(x), b.embed(x))
    assert DEFAULT_WEIGHTS.stat().st_size <= 20 * 1024 * 1024
