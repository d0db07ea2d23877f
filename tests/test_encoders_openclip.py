"""open_clip: a tiny CLIP built from a model JSON with random weights, saved as a checkpoint file,
loads strictly through the encoder factory; image and text vectors share one space."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import open_clip  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from embeddings.encoders.base import SurveyContext  # noqa: E402
from embeddings.encoders.registry import get_encoder  # noqa: E402
from embeddings.encoders.weights import WeightsNotFoundError  # noqa: E402

SURVEY = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262)
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clip")
    config = folder / "arp-tiny-clip.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("arp-tiny-clip")
    weights = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return config, weights


def _rows(n=2):
    rng = np.random.default_rng(3)
    return [{"image": rng.normal(0, 0.3, 3 * 64 * 64).astype(np.float32), "image_shape": [3, 64, 64]} for _ in range(n)]


def test_image_and_text_embeddings(tiny):
    config, weights = tiny
    enc = get_encoder("openclip-image", model="arp-tiny-clip", model_config=str(config), checkpoint=str(weights))
    assert enc.dim == 32 and enc.name == "openclip-arp-tiny-clip-image" and enc.weights_revision.startswith("sha256:")
    batch = np.stack([enc.preprocess(r, SURVEY) for r in _rows()])
    assert batch.shape == (2, 3, 32, 32)
    a = enc.embed(batch)
    assert a.shape == (2, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, enc.embed(batch))
    t = enc.embed_text(["a spiral galaxy", "an elliptical galaxy"])
    assert t.shape == (2, 32) and not np.allclose(t[0], t[1])
    np.testing.assert_array_equal(t, enc.embed_text(["a spiral galaxy", "an elliptical galaxy"]))


def test_strict_load_rejects_wrong_shapes(tiny, tmp_path):
    config, weights = tiny
    from safetensors.torch import load_file

    sd = load_file(str(weights))
    sd["extra.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        get_encoder("openclip-image", model="arp-tiny-clip", model_config=str(config), checkpoint=str(bad))


def test_default_model_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(WeightsNotFoundError, match="huggingface-cli download laion/CLIP-ViT-B-32-laion2B-s34B-b79K open_clip_model.safetensors"):
        get_encoder("openclip-image")


def test_preprocess_uses_clip_normalisation(tiny):
    config, weights = tiny
    enc = get_encoder("openclip-image", model="arp-tiny-clip", model_config=str(config), checkpoint=str(weights))
    zero = {"image": np.zeros(3 * 64 * 64, np.float32), "image_shape": [3, 64, 64]}
    out = enc.preprocess(zero, SURVEY)
    sky = np.arcsinh(20 * 0.03) / np.sqrt(20)
    np.testing.assert_allclose(out[:, 0, 0], (sky - enc.mean[:, 0, 0]) / enc.std[:, 0, 0], rtol=1e-5)
