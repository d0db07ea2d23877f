"""AstroPT: a tiny GPT saved as upstream's nanoGPT-style ckpt.pt (pickled ModalityRegistry included) loads
weights-only and strictly, without the astropt package; tokens follow the spiral/per-patch recipe."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

os.environ["HF_HUB_OFFLINE"] = "1"

from embeddings.encoders.astropt import astropt_tokens  # noqa: E402
from embeddings.encoders.base import SurveyContext  # noqa: E402
from embeddings.encoders.registry import get_encoder  # noqa: E402
from embeddings.encoders.weights import WeightsNotFoundError  # noqa: E402
from embeddings.models.astropt_gpt import AstroPT, GPTConfig, Modality, spiral_order  # noqa: E402
from tests.upstream_modules import upstream_module  # noqa: E402

SURVEY = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262)
ARGS = {"n_layer": 4, "n_head": 2, "n_embd": 64, "block_size": 64, "bias": False, "vocab_size": None, "dropout": 0.0, "attn_type": "causal", "tokeniser": "aim"}


def write_astropt_ckpt(path: Path, compiled: bool = False) -> None:
    """Write ckpt.pt as upstream's train.py does: model, optimizer, model_args, config, modality_registry."""
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=64, n_layer=4, n_head=2, n_embd=64, modalities=(Modality("images", 16 * 16 * 3, 16),))
    model = AstroPT(cfg)
    for p in model.parameters():
        nn.init.normal_(p, std=0.05)
    state = {("_orig_mod." if compiled else "") + k: v for k, v in model.state_dict().items()}
    with upstream_module("astropt.model") as mod:
        config_cls = dataclass(type("ModalityConfig", (), {"__module__": mod.__name__, "__annotations__": {"name": str, "input_size": int, "pos_input_size": int, "patch_size": int, "embed_pos": bool, "loss_weight": float}}))
        registry_cls = type("ModalityRegistry", (), {"__module__": mod.__name__})
        mod.ModalityConfig, mod.ModalityRegistry = config_cls, registry_cls
        registry = registry_cls()
        registry.modalities = {"images": config_cls("images", 768, 1, 16, True, 1.0)}
        torch.save(
            {"model": state, "optimizer": {"state": {}}, "model_args": ARGS, "iter_num": 30000, "best_val_loss": 0.5, "config": {"batch_size": 16}, "modality_registry": registry},
            path,
        )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("astropt") / "ckpt.pt"
    write_astropt_ckpt(path)
    return path


def _rows(n=2):
    rng = np.random.default_rng(5)
    return [{"image": rng.normal(0, 0.3, 3 * 64 * 64).astype(np.float32), "image_shape": [3, 64, 64]} for _ in range(n)]


def test_loads_official_checkpoint_without_the_package(ckpt):
    enc = get_encoder("astropt", checkpoint=str(ckpt), image_size=64)
    assert not any(name.startswith("astropt") for name in sys.modules)
    assert (enc.name, enc.dim) == ("astropt", 64) and enc.weights_revision.startswith("sha256:")
    batch = np.stack([enc.preprocess(r, SURVEY) for r in _rows()])
    assert batch.shape == (2, 16, 768)  # (64/16)^2 patches of 16x16x3
    a = enc.embed(batch)
    assert a.shape == (2, 64) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, enc.embed(batch))
    assert not np.allclose(a[0], a[1])


def test_compiled_prefix_is_stripped_and_folder_checkpoint_works(tmp_path):
    folder = tmp_path / "astropt" / "095M"
    folder.mkdir(parents=True)
    write_astropt_ckpt(folder / "ckpt.pt", compiled=True)
    assert get_encoder("astropt", checkpoint=str(folder), image_size=32).dim == 64


def test_too_many_patches_for_block_size_is_refused(ckpt):
    with pytest.raises(ValueError, match="block size"):
        get_encoder("astropt", checkpoint=str(ckpt), image_size=256)


def test_missing_weights_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(WeightsNotFoundError, match="huggingface-cli download Smith42/astroPT_v2.0 astropt/095M/ckpt.pt"):
        get_encoder("astropt")


def test_spiral_starts_at_centre_and_winds_out():
    assert spiral_order(4).tolist() == [9, 10, 6, 5, 4, 8, 12, 13, 14, 15, 11, 7, 3, 2, 1, 0]
    assert spiral_order(3).tolist()[0] == 4


def test_tokens_are_standardised_patches_in_spiral_order():
    rgb = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32) * 255
    tokens = astropt_tokens(rgb)
    assert tokens.shape == (4, 768)
    np.testing.assert_allclose(tokens.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(tokens.std(axis=1, ddof=1), 1, rtol=1e-4)
    # first token = raster patch 2 (row 1, column 0) of the 2x2 grid, on the W,H-swapped image:
    cwh = rgb.transpose(0, 2, 1)
    patch = cwh[:, 16:32, 0:16].transpose(1, 2, 0).ravel()
    np.testing.assert_allclose(tokens[0], (patch - patch.mean()) / (patch.std(ddof=1) + 1e-8), rtol=1e-4, atol=1e-5)
    assert spiral_order(2).tolist() == [2, 3, 1, 0]


def test_095m_state_dict_matches_upstream_key_list():
    import json

    expected = json.loads((Path(__file__).parent / "fixtures" / "astropt_095m_state_keys.json").read_text())
    cfg = GPTConfig(block_size=1024, n_layer=12, n_head=12, n_embd=768, modalities=(Modality("images", 768, 16),))
    with torch.device("meta"):
        model = AstroPT(cfg)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == expected["keys"]
    assert sum(v.numel() for v in model.state_dict().values()) == expected["n_params"]
