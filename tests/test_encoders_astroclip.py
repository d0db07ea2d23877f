"""AstroCLIP: official Lightning checkpoint layout loads strictly, towers embed deterministically,
preprocessing follows the documented recipe. Tiny random-weight configs of the same architecture code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

os.environ["HF_HUB_OFFLINE"] = "1"

from backend.spectra import desi_wavelength  # noqa: E402
from embeddings.encoders.base import SurveyContext  # noqa: E402
from embeddings.encoders.registry import get_encoder  # noqa: E402
from embeddings.encoders.weights import WeightsNotFoundError  # noqa: E402
from embeddings.models.astroclip_model import ImageTower, SpectrumTower  # noqa: E402
from embeddings.models.astroclip_specformer import SpecFormerConfig, spectrum_tokens  # noqa: E402
from embeddings.models.astroclip_vit import ViTConfig  # noqa: E402
from tests.upstream_modules import upstream_module  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SURVEY = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262, wavelength=desi_wavelength())
TINY_VIT = ViTConfig(img_size=48, patch_size=12, embed_dim=128, depth=4, num_heads=2, block_chunks=2)
TINY_SPEC = SpecFormerConfig(embed_dim=256, num_layers=2, num_heads=2)


def write_official_ckpt(path: Path, seed: int = 0, extra_key: str | None = None, drop_key: str | None = None) -> dict:
    """Write a tiny AstroClipModel checkpoint the way Lightning does: prefixed state_dict plus pickled
    hyper-parameters (the encoder modules, as upstream's save_hyperparameters stores them)."""
    torch.manual_seed(seed)
    image, spectrum = ImageTower(TINY_VIT, embed_dim=64), SpectrumTower(TINY_SPEC, embed_dim=64)
    for p in list(image.parameters()) + list(spectrum.parameters()):
        nn.init.normal_(p, std=0.05)
    state = {f"image_encoder.{k}": v for k, v in image.state_dict().items()}
    state |= {f"spectrum_encoder.{k}": v for k, v in spectrum.state_dict().items()}
    if extra_key:
        state[extra_key] = torch.zeros(1)
    if drop_key:
        state.pop(drop_key)
    with upstream_module("astroclip.models.astroclip") as mod:
        head_cls = type("ImageHead", (nn.Module,), {"__module__": mod.__name__})
        mod.ImageHead = head_cls
        head = head_cls()
        head.mlp = nn.Linear(2, 2)
        torch.save(
            {
                "epoch": 99,
                "global_step": 12345,
                "pytorch-lightning_version": "2.1.2",
                "state_dict": state,
                "hyper_parameters": {"image_encoder": head, "temperature": 15.5, "lr": 1e-4, "logit_scale": 15.5},
                "optimizer_states": [],
                "lr_schedulers": [],
            },
            path,
        )
    return state


def _row(seed: int = 0, size: int = 64) -> dict:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    blob = np.exp(-(x**2 + y**2) / 40.0)
    cube = np.stack([blob * s for s in (0.5, 1.0, 1.6)]) + rng.normal(0, 0.01, (3, size, size))
    wave = desi_wavelength()
    flux = 2.0 + np.sin(wave / 300.0) + rng.normal(0, 0.1, wave.size)
    return {
        "image": cube.astype(np.float32).ravel(),
        "image_shape": [3, size, size],
        "spectrum_flux": flux.astype(np.float32),
        "spectrum_ivar": np.ones(wave.size, np.float32),
    }


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("astroclip") / "astroclip.ckpt"
    write_official_ckpt(path)
    return path


def test_full_size_state_dict_matches_upstream_key_list():
    expected = json.loads((FIXTURES / "astroclip_state_keys.json").read_text())
    with torch.device("meta"):
        model = nn.Module()
        model.image_encoder, model.spectrum_encoder = ImageTower(), SpectrumTower()
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected["keys"]
    assert sum(v.numel() for v in model.state_dict().values()) == expected["n_params"]


def test_towers_load_strictly_from_lightning_checkpoint_and_embed(ckpt):
    rows = [_row(i) for i in range(3)]
    img = get_encoder("astroclip-image", checkpoint=str(ckpt))
    spec = get_encoder("astroclip-spectrum", checkpoint=str(ckpt))
    assert (img.dim, spec.dim) == (64, 64)
    assert img.aligned_group == spec.aligned_group == "astroclip"
    assert img.weights_revision == spec.weights_revision and img.weights_revision.startswith("sha256:")
    batch = np.stack([img.preprocess(r, SURVEY) for r in rows])
    assert batch.shape == (3, 3, 48, 48)
    a, b = img.embed(batch), img.embed(torch.from_numpy(batch))
    assert a.shape == (3, 64) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(img.embed(batch[1:2])[0], a[1], rtol=1e-4, atol=1e-5)  # batch-independent
    assert not np.allclose(a[0], a[1])
    s = spec.embed(np.stack([spec.preprocess(r, SURVEY) for r in rows]))
    assert s.shape == (3, 64) and np.isfinite(s).all() and not np.allclose(s[0], s[2])


@pytest.mark.parametrize(("extra", "drop"), [("image_encoder.backbone.extra.weight", None), (None, "spectrum_encoder.mlp.encoder.bias")])
def test_loading_is_strict(tmp_path, extra, drop):
    path = tmp_path / "astroclip.ckpt"
    write_official_ckpt(path, extra_key=extra, drop_key=drop)
    name = "astroclip-image" if extra else "astroclip-spectrum"
    with pytest.raises(RuntimeError, match="Unexpected key|Missing key"):
        get_encoder(name, checkpoint=str(path))


def test_missing_weights_name_the_file_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as err:
        get_encoder("astroclip-image")
    msg = str(err.value)
    assert "huggingface-cli download polymathic-ai/astroclip astroclip.ckpt --local-dir" in msg
    assert str(tmp_path / "w" / "astroclip" / "astroclip.ckpt") in msg and "--checkpoint PATH" in msg


def test_weights_folder_is_used_without_checkpoint_argument(tmp_path, monkeypatch, ckpt):
    folder = tmp_path / "w" / "astroclip"
    folder.mkdir(parents=True)
    (folder / "astroclip.ckpt").write_bytes(ckpt.read_bytes())
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "w"))
    assert get_encoder("astroclip-spectrum").dim == 64


def test_image_recipe_on_hand_computed_pixels():
    from embeddings.encoders.astroclip import astroclip_image_input

    cube = np.zeros((3, 64, 64), np.float32)
    cube[0, 10, 20] = 1.0  # one bright g pixel at row 10, column 20
    out = astroclip_image_input({"image": cube.ravel(), "image_shape": [3, 64, 64]}, SURVEY)
    assert out.shape == (3, 144, 144)
    sky = np.arcsinh(20 * 0.03) / np.sqrt(20)  # zero flux: every plane (0 + m) * asinh(Q m) / sqrt(Q) / m
    assert sky == pytest.approx(0.127193, abs=1e-5)
    np.testing.assert_allclose(out[:, 0, 0], sky, rtol=1e-5)  # padding is sky, not black
    # 64 px at the model's 0.262"/px is zero-padded by 40 px each side; H and W are swapped as upstream.
    intensity = (1.0 * 6.0 + 0.03 + 0.03 + 0.03) / 3
    stretch = np.arcsinh(20 * intensity) / np.sqrt(20)
    np.testing.assert_allclose(out[:, 40 + 20, 40 + 10], [0.03 * stretch / intensity, 0.03 * stretch / intensity, 1.0], rtol=1e-5)
    assert out[2, 40 + 10, 40 + 20] == pytest.approx(sky, rel=1e-5)


def test_image_resampled_from_other_pixel_scale_keeps_flux():
    from embeddings.encoders.imageprep import resample_pixel_scale

    cube = np.ones((3, 40, 40), np.float32)
    out = resample_pixel_scale(cube, 0.524, 0.262)  # 2x finer pixels: twice the size, a quarter the flux each
    assert out.shape == (3, 80, 80)
    assert out.sum() == pytest.approx(cube.sum(), rel=1e-4)


def test_spectrum_windows_follow_specformer_recipe():
    flux = torch.from_numpy(np.random.default_rng(1).normal(3.0, 2.0, (2, 7781)).astype(np.float32))
    tokens = spectrum_tokens(flux)
    assert tokens.shape == (2, 778, 22)  # 777 windows of 20 px every 10 px + 1 mean/std token
    mean, std = flux[0].mean(), flux[0].std()
    z = (flux[0] - mean) / std
    assert tokens[0, 0, 0] == pytest.approx(((mean - 2) / 2).item(), rel=1e-5)
    assert tokens[0, 0, 1] == pytest.approx(((std - 2) / 8).item(), rel=1e-5)
    torch.testing.assert_close(tokens[0, 1, 2:], z[0:20])
    torch.testing.assert_close(tokens[0, 2, 2:], z[10:30])
    torch.testing.assert_close(tokens[0, -1, 2:], z[7760:7780])
    assert (tokens[0, 1:, :2] == 0).all()


def test_spectrum_regridded_from_another_wavelength_grid():
    from embeddings.encoders.astroclip import astroclip_spectrum_input

    wave = np.arange(3500.0, 10000.0, 2.0)
    flux = 1.0 + wave / 1e4
    survey = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262, wavelength=wave)
    out = astroclip_spectrum_input({"spectrum_flux": flux, "spectrum_ivar": np.ones_like(flux)}, survey)
    assert out.shape == (7781,)
    np.testing.assert_allclose(out, 1.0 + desi_wavelength() / 1e4, rtol=1e-6)


def test_bad_rows_raise_clear_errors():
    from embeddings.encoders.astroclip import astroclip_image_input, astroclip_spectrum_input

    with pytest.raises(ValueError, match="missing"):
        astroclip_image_input(_row(), SurveyContext(bands=("g", "r", "i"), pixel_scale=0.262))
    with pytest.raises(ValueError, match="no spectrum"):
        astroclip_spectrum_input({"spectrum_flux": None}, SURVEY)


def test_preprocessor_shipped_to_workers_carries_no_weights(ckpt):
    import pickle

    for name in ("astroclip-image", "astroclip-spectrum"):
        enc = get_encoder(name, checkpoint=str(ckpt))
        blob = pickle.dumps(enc.preprocessor())
        assert len(blob) < 5000
        np.testing.assert_array_equal(pickle.loads(blob)(_row(), SURVEY), enc.preprocess(_row(), SURVEY))


def test_astrodino_teacher_checkpoint_loads_backbone_strictly(tmp_path):
    from embeddings.models.astroclip_vit import AstroDinoViT

    torch.manual_seed(1)
    vit = AstroDinoViT(TINY_VIT)
    teacher = {f"backbone.{k}": v for k, v in vit.state_dict().items()}
    teacher["dino_head.last_layer.weight_g"] = torch.ones(8, 1)  # training-only head, ignored as upstream does
    path = tmp_path / "astrodino.ckpt"
    torch.save({"teacher": teacher}, path)
    enc = get_encoder("astrodino-image", checkpoint=str(path))
    assert enc.dim == 128
    x = np.stack([enc.preprocess(_row(i), SURVEY) for i in range(2)])
    out = enc.embed(x)
    assert out.shape == (2, 128)
    with torch.no_grad():
        np.testing.assert_allclose(out, vit.eval()(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    teacher.pop("backbone.norm.bias")
    torch.save({"teacher": teacher}, path)
    with pytest.raises(RuntimeError, match="Missing key"):
        get_encoder("astrodino-image", checkpoint=str(path))


def test_specformer_lightning_checkpoint_loads_strictly(tmp_path):
    from embeddings.models.astroclip_specformer import SpecFormer

    torch.manual_seed(2)
    model = SpecFormer(TINY_SPEC)
    hparams = {"input_dim": 22, "embed_dim": 256, "num_layers": 2, "num_heads": 2, "max_len": 800, "mask_num_chunks": 6,
               "mask_chunk_width": 50, "slice_section_length": 20, "slice_overlap": 10, "dropout": 0.0, "norm_first": False}
    path = tmp_path / "specformer.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams, "epoch": 1}, path)
    enc = get_encoder("specformer-spectrum", checkpoint=str(path))
    x = np.stack([enc.preprocess(_row(i), SURVEY) for i in range(2)])
    out = enc.embed(x)
    assert out.shape == (2, 256) and np.isfinite(out).all()
    with torch.no_grad():
        np.testing.assert_allclose(out, model.eval()(torch.from_numpy(x)).mean(dim=1).numpy(), rtol=1e-4, atol=1e-5)


def test_embedding_job_writes_both_aligned_spaces_from_the_checkpoint(tmp_path, ckpt):
    from backend import schema
    from backend.spaces import list_spaces, read_vectors
    from backend.store import open_atlas
    from embeddings.job import run_embedding

    atlas = open_atlas(tmp_path / "atlas", create=True)
    atlas.register_survey("legacy", bands=["g", "r", "z"], pixel_scale=0.262, image_shape=[3, 64, 64], wavelength=desi_wavelength())
    rows = [{"object_id": f"o{i}", "survey": "legacy", "ra": float(i), "dec": 0.0, "redshift": 0.1, "split": "test", **_row(i)} for i in range(6)]
    for r in rows:
        r["image_shape"] = [3, 64, 64]
    atlas.upsert(schema.OBJECTS, rows)
    for name in ("astroclip-image", "astroclip-spectrum"):
        result = run_embedding(atlas, name, checkpoint=str(ckpt), device="cpu", workers=0, batch_size=4, progress=False, index=False)
        assert result.embedded == 6 and result.skipped == 0
    spaces = list_spaces(atlas)
    img, spec = spaces["astroclip-image__image"], spaces["astroclip-spectrum__spectrum"]
    assert img.aligned_group == spec.aligned_group == "astroclip" and img.dim == spec.dim == 64
    assert img.weights_revision == spec.weights_revision
    ids, vecs = read_vectors(atlas, "astroclip-image__image")
    enc = get_encoder("astroclip-image", checkpoint=str(ckpt))
    direct = enc.embed(np.stack([enc.preprocess(rows[int(i[1:])], SURVEY) for i in ids]))
    np.testing.assert_allclose(vecs, direct, rtol=1e-4, atol=1e-5)
