"""AstroCLIP (Parker et al. 2024): image and spectrum towers into one aligned 1024-d space, plus the
single-modal AstroDINO image and SpecFormer spectrum backbones. Architecture in embeddings/models/astroclip_*."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from backend.spectra import desi_wavelength
from embeddings.encoders.base import SurveyContext
from embeddings.encoders.hub_weights import ASTROCLIP, ASTRODINO, SPECFORMER
from embeddings.encoders.imageprep import LEGACY_PIXEL_SCALE, fit_field, regrid_spectrum, survey_grz, viewer_rgb
from embeddings.encoders.pretrained import TorchEncoder, weights_revision
from embeddings.encoders.registry import WeightsConfig, register_encoder
from embeddings.encoders.weights import load_checkpoint, opaque_state
from embeddings.models.astroclip_model import (
    build_image_tower,
    build_spectrum_tower,
    load_strict,
    specformer_config_from_state,
    split_astroclip_state,
    vit_config_from_state,
)
from embeddings.models.astroclip_specformer import SpecFormer
from embeddings.models.astroclip_vit import AstroDinoViT

CROP = 144  # AstroCLIP's centre crop of its 152 px, 0.262"/px cutouts
IMAGE_PREPROCESS = "grz@0.262as-fit144-viewerrgb(m=0.03,Q=20)-transposeHW.v1"
SPECTRUM_PREPROCESS = "desi7781-linear-regrid-badpix-interp.v1"  # standardise/window inside the model


def astroclip_image_input(row: dict, survey: SurveyContext, size: int = CROP) -> np.ndarray:
    """Cutout -> AstroCLIP image input (3 x size x size float32), the documented recipe.

    g,r,z resampled to 0.262"/px; centre-cropped, or zero-padded when smaller, to size x size (keeps the
    physical scale); Legacy Survey viewer RGB with arcsinh stretch (m=0.03, Q=20); H and W swapped as
    upstream's collator does (`permute(0, 3, 2, 1)`).
    """
    grz = fit_field(survey_grz(row, survey, LEGACY_PIXEL_SCALE), size)
    return np.ascontiguousarray(viewer_rgb(grz).transpose(0, 2, 1))


def astroclip_spectrum_input(row: dict, survey: SurveyContext, flux_scale: float = 1.0) -> np.ndarray:
    """Spectrum -> flux on the 7781-pixel DESI grid (1e-17 erg/s/cm2/A expected; `flux_scale` converts)."""
    return regrid_spectrum(row, survey, desi_wavelength()) * np.float32(flux_scale)


def _lightning_state(path) -> tuple[dict, dict]:
    """(state_dict, plain hyper-parameters) of a Lightning checkpoint, read weights-only."""
    ckpt = load_checkpoint(path)
    if "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a Lightning checkpoint (no 'state_dict'); keys: {list(ckpt)[:8]}")
    return ckpt["state_dict"], opaque_state(ckpt.get("hyper_parameters"))


class AstroClipImageEncoder(TorchEncoder):
    """AstroCLIP image tower: AstroDINO ViT-L/12 tokens -> cross-attention head -> 1024-d."""

    name, modality, aligned_group = "astroclip-image", "image", "astroclip"
    preprocess_version = IMAGE_PREPROCESS

    def __init__(self, tower: torch.nn.Module, weights_revision: str):
        self.model, self.weights_revision = tower, weights_revision
        self.dim = tower.cross_attention.query.shape[-1]
        self.size = tower.backbone.cfg.img_size

    def preprocessor(self):
        return partial(astroclip_image_input, size=self.size)


class AstroClipSpectrumEncoder(TorchEncoder):
    """AstroCLIP spectrum tower: SpecFormer tokens -> cross-attention head (+ residual MLP) -> 1024-d."""

    name, modality, aligned_group = "astroclip-spectrum", "spectrum", "astroclip"
    preprocess_version = SPECTRUM_PREPROCESS

    def __init__(self, tower: torch.nn.Module, weights_revision: str, flux_scale: float = 1.0):
        self.model, self.weights_revision, self.flux_scale = tower, weights_revision, flux_scale
        self.dim = tower.cross_attention.query.shape[-1]
        if flux_scale != 1.0:
            self.preprocess_version = f"{SPECTRUM_PREPROCESS}-x{flux_scale:g}"

    def preprocessor(self):
        return partial(astroclip_spectrum_input, flux_scale=self.flux_scale)


def load_astroclip(checkpoint=None, tower: str = "image", **kw) -> TorchEncoder:
    """Load one tower of `astroclip.ckpt` (strict on that tower; the file must hold both towers)."""
    found = ASTROCLIP.resolve(checkpoint)
    state, _ = _lightning_state(found.path)
    image_sd, spectrum_sd = split_astroclip_state(state)
    revision = weights_revision(found.path)
    if tower == "image":
        return AstroClipImageEncoder(build_image_tower(image_sd, vit_heads=kw.get("vit_heads")), revision)
    return AstroClipSpectrumEncoder(
        build_spectrum_tower(spectrum_sd, spec_heads=kw.get("spec_heads")), revision, kw.get("flux_scale", 1.0)
    )


@register_encoder(
    "astroclip", modality="image", weights=WeightsConfig(ASTROCLIP.source, dim=1024),
    description="AstroCLIP image tower (ViT-L/12 AstroDINO + cross-attention), aligned with astroclip-spectrum",
)
def astroclip_image(checkpoint: str | None = None, vit_heads: int | None = None) -> TorchEncoder:
    """AstroCLIP image tower from polymathic-ai/astroclip `astroclip.ckpt` (or `checkpoint=PATH`)."""
    return load_astroclip(checkpoint, "image", vit_heads=vit_heads)


@register_encoder(
    "astroclip", modality="spectrum", weights=WeightsConfig(ASTROCLIP.source, dim=1024),
    description="AstroCLIP spectrum tower (SpecFormer + cross-attention), aligned with astroclip-image",
)
def astroclip_spectrum(checkpoint: str | None = None, flux_scale: float = 1.0, spec_heads: int | None = None) -> TorchEncoder:
    """AstroCLIP spectrum tower from `astroclip.ckpt`; `flux_scale` converts atlas flux to 1e-17 erg/s/cm2/A."""
    return load_astroclip(checkpoint, "spectrum", flux_scale=flux_scale, spec_heads=spec_heads)


class AstroDinoEncoder(TorchEncoder):
    """AstroDINO backbone alone: DINOv2 CLS token (with positions), 1024-d; not aligned with spectra."""

    name, modality = "astrodino-image", "image"
    preprocess_version = IMAGE_PREPROCESS

    def __init__(self, vit: AstroDinoViT, weights_revision: str):
        self.model, self.weights_revision, self.dim = vit, weights_revision, vit.cfg.embed_dim

    def preprocessor(self):
        return partial(astroclip_image_input, size=self.model.cfg.img_size)


def astrodino_backbone_state(ckpt: dict) -> tuple[dict, list[str]]:
    """Backbone keys of an AstroDINO checkpoint ({'teacher': ...}, {'model': ...} or Lightning) and the skipped keys.

    Upstream loads the `teacher` entry, drops `module.`/`backbone.` prefixes and ignores the DINO/iBOT heads.
    """
    sd = ckpt.get("teacher") or ckpt.get("state_dict") or ckpt.get("model") or ckpt
    sd = {k.replace("module.", ""): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    prefix = "teacher.backbone." if any(k.startswith("teacher.backbone.") for k in sd) else "backbone."
    if not any(k.startswith(prefix) for k in sd):
        return sd, []
    return {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}, sorted(k for k in sd if not k.startswith(prefix))


@register_encoder(
    "astrodino", modality="image", weights=WeightsConfig(ASTRODINO.source, dim=1024),
    description="AstroDINO ViT-L/12 image backbone alone (CLS token)",
)
def astrodino_image(checkpoint: str | None = None, num_heads: int | None = None) -> TorchEncoder:
    """AstroDINO from polymathic-ai/astrodino `astrodino.ckpt` (strict on the backbone; DINO heads skipped)."""
    found = ASTRODINO.resolve(checkpoint)
    backbone, _skipped = astrodino_backbone_state(load_checkpoint(found.path))
    cfg = vit_config_from_state(backbone, num_heads)
    return AstroDinoEncoder(load_strict(lambda: AstroDinoViT(cfg), backbone), weights_revision(found.path))


class SpecFormerEncoder(TorchEncoder):
    """SpecFormer alone: mean of its token embeddings, 768-d (as AstroCLIP's property-estimation baseline)."""

    name, modality = "specformer-spectrum", "spectrum"
    preprocess_version = SPECTRUM_PREPROCESS

    def __init__(self, model: SpecFormer, weights_revision: str):
        self.model, self.weights_revision, self.dim = model, weights_revision, model.cfg.embed_dim

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch).mean(dim=1)

    def preprocessor(self):
        return astroclip_spectrum_input


@register_encoder(
    "specformer", modality="spectrum", weights=WeightsConfig(SPECFORMER.source, dim=768),
    description="AstroCLIP's SpecFormer spectrum backbone alone (mean token)",
)
def specformer_spectrum(checkpoint: str | None = None) -> TorchEncoder:
    """SpecFormer from polymathic-ai/specformer `specformer.ckpt` (strict)."""
    found = SPECFORMER.resolve(checkpoint)
    state, hparams = _lightning_state(found.path)
    cfg = specformer_config_from_state(state, hparams)
    return SpecFormerEncoder(load_strict(lambda: SpecFormer(cfg), state), weights_revision(found.path))
