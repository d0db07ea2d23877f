"""Zoobot: a timm encoder saved in the hub's file layout loads offline from the HF cache and from a path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import timm  # noqa: E402
import torch  # noqa: E402
from timm.models._hub import save_for_hf  # noqa: E402

from embeddings.encoders.base import SurveyContext  # noqa: E402
from embeddings.encoders.registry import get_encoder  # noqa: E402
from embeddings.encoders.weights import WeightsNotFoundError  # noqa: E402
from embeddings.encoders.zoobot import zoobot_input  # noqa: E402

SURVEY = SurveyContext(bands=("g", "r", "z"), pixel_scale=0.262)
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding mwalmsley/zoobot-encoder-convnext_nano as timm's push_to_hub writes it."""
    torch.manual_seed(0)
    model = timm.create_model("convnext_nano", num_classes=0)
    cache = tmp_path_factory.mktemp("hub")
    repo = cache / "models--mwalmsley--zoobot-encoder-convnext_nano"
    save_for_hf(model, str(repo / "snapshots" / REVISION), safe_serialization=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return cache


def _rows(n: int = 2) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"image": rng.normal(0, 0.3, 3 * 64 * 64).astype(np.float32), "image_shape": [3, 64, 64]} for _ in range(n)]


def test_loads_from_offline_hub_cache_and_embeds(hub_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "none"))
    enc = get_encoder("zoobot")
    assert (enc.name, enc.dim) == ("zoobot", 640)
    assert enc.weights_revision.startswith("sha256:")
    batch = np.stack([enc.preprocess(r, SURVEY) for r in _rows()])
    assert batch.shape == (2, 3, 224, 224) and 0.0 <= batch.min() and batch.max() <= 1.0
    a, b = enc.embed(batch), enc.embed(batch)
    assert a.shape == (2, 640) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])


def test_local_path_gives_the_same_vectors(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    from_hub = get_encoder("zoobot")
    folder = hub_cache / "models--mwalmsley--zoobot-encoder-convnext_nano" / "snapshots" / REVISION
    from_path = get_encoder("zoobot", checkpoint=str(folder / "model.safetensors"))
    batch = np.stack([from_hub.preprocess(r, SURVEY) for r in _rows(1)])
    np.testing.assert_allclose(from_hub.embed(batch), from_path.embed(batch), rtol=1e-5, atol=1e-6)
    assert from_hub.weights_revision == from_path.weights_revision


def test_other_variant_gets_its_own_space_and_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("ARP_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(WeightsNotFoundError, match="huggingface-cli download mwalmsley/zoobot-encoder-convnext_tiny model.safetensors"):
        get_encoder("zoobot", variant="convnext_tiny")


def test_preprocess_is_viewer_rgb_resized():
    cube = np.zeros((3, 64, 64), np.float32)
    out = zoobot_input({"image": cube.ravel(), "image_shape": [3, 64, 64]}, SURVEY)
    assert out.shape == (3, 224, 224)
    np.testing.assert_allclose(out, np.arcsinh(20 * 0.03) / np.sqrt(20), rtol=1e-5)  # empty sky level
    grey = zoobot_input({"image": cube.ravel(), "image_shape": [3, 64, 64]}, SURVEY, greyscale=True)
    assert grey.shape == (1, 224, 224)


@pytest.mark.parametrize(("shape", "size"), [((3, 64, 64), 224), ((1, 100, 80), 224), ((3, 152, 152), 64), ((3, 1, 5), 4)])
def test_resize_is_scipy_bilinear_zoom(shape: tuple[int, int, int], size: int):
    from scipy import ndimage

    from embeddings.encoders.imageprep import resize

    image = np.random.default_rng(0).random(shape).astype(np.float32) * 50 - 5
    expected = np.stack([ndimage.zoom(p, (size / shape[1], size / shape[2]), order=1, mode="nearest") for p in image])
    out = resize(image, size)
    assert out.dtype == np.float32 and out.shape == (shape[0], size, size)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)  # the recipe the preprocessing version names
