"""Zoobot (Walmsley et al.): Galaxy Zoo-trained timm encoders from `hf_hub:mwalmsley/zoobot-encoder-<variant>`.

Weights are the hub's timm files (model.safetensors + config.json), loaded through timm's own
pretrained-weights path with the file given explicitly, so the hub and a local copy take one route.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import torch

from embeddings.encoders.base import SurveyContext
from embeddings.encoders.hub_weights import DEFAULT_WEIGHTS, zoobot_weights
from embeddings.encoders.imageprep import resize, row_cube, select_bands, viewer_rgb
from embeddings.encoders.pretrained import TorchEncoder, weights_revision
from embeddings.encoders.registry import WeightsConfig, register_encoder
from embeddings.encoders.weights import WeightsNotFoundError, resolve_weights

PREPROCESS = "grz-viewerrgb(m=0.03,Q=20)-resize{size}-01{grey}.v1"


def zoobot_input(row: dict, survey: SurveyContext, size: int = 224, greyscale: bool = False) -> np.ndarray:
    """Cutout -> Zoobot input: Legacy viewer RGB in [0, 1] (galaxy fills the field, as in Galaxy Zoo DESI
    cutouts), bilinear resize to size x size; greyscale encoders get the channel mean (1 x size x size)."""
    rgb = resize(viewer_rgb(select_bands(row_cube(row), tuple(survey.bands))), size)
    return rgb.mean(axis=0, keepdims=True) if greyscale else rgb


class ZoobotEncoder(TorchEncoder):
    """A timm Zoobot encoder with its classifier removed (pooled features)."""

    name, modality = "zoobot", "image"

    def __init__(self, model: torch.nn.Module, variant: str, weights_revision: str, size: int = 224):
        self.model, self.variant, self.weights_revision, self.size = model.eval(), variant, weights_revision, size
        if variant != "convnext_nano":  # one space per variant: never mix vectors of two architectures
            self.name = f"zoobot-{variant}"
        self.dim = int(model.num_features)
        self.greyscale = int(model.pretrained_cfg.get("input_size", (3,))[0]) == 1 or variant.startswith("greyscale-")
        self.preprocess_version = PREPROCESS.format(size=size, grey="-grey" if self.greyscale else "")

    def preprocessor(self):
        return partial(zoobot_input, size=self.size, greyscale=self.greyscale)


def _resolve(variant: str, checkpoint: str | None):
    hub = zoobot_weights(variant)
    try:
        return hub.resolve(checkpoint)
    except WeightsNotFoundError:
        if checkpoint is not None and Path(checkpoint).suffix in {".bin", ".pth", ".pt"}:
            return resolve_weights(hub.folder, hub.repo, Path(checkpoint).name, checkpoint)
        raise


def load_zoobot(variant: str = "convnext_nano", checkpoint: str | None = None, image_size: int = 224) -> ZoobotEncoder:
    """Build the timm architecture named in the hub's config.json and load the weights file into it (strict)."""
    weights = _resolve(variant, checkpoint)  # first: missing weights fail before timm's import (seconds)
    import timm

    config_path = weights.path.parent / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    arch = config.get("architecture") or variant.removeprefix("greyscale-")
    kwargs = {k: v for k, v in (config.get("model_args") or {}).items() if k not in ("num_classes", "pretrained")}
    if "in_chans" not in kwargs and variant.startswith("greyscale-"):
        kwargs["in_chans"] = 1
    model = timm.create_model(
        arch, pretrained=True, num_classes=0, pretrained_cfg_overlay={"file": str(weights.path)}, **kwargs
    )
    return ZoobotEncoder(model, variant, weights_revision(weights.path), image_size)


@register_encoder(
    "zoobot", name="zoobot", modality="image",
    weights=WeightsConfig(DEFAULT_WEIGHTS["zoobot"].source, dim=640),
    description="Zoobot Galaxy Zoo encoder (timm; convnext_nano default)",
)
def zoobot(checkpoint: str | None = None, variant: str = "convnext_nano", image_size: int = 224) -> ZoobotEncoder:
    """Zoobot encoder `variant` (e.g. convnext_nano, convnext_tiny, efficientnet_b0, greyscale-convnext_nano)."""
    return load_zoobot(variant, checkpoint, image_size)
