"""AstroPT (Smith et al. 2024): autoregressive GPT over 16x16 image patches in spiral order; the embedding is
the mean of the token states after the middle block (upstream's `generate_embeddings`).

Arp reads the official nanoGPT-style `ckpt.pt` itself (the `astropt` package would pull ~30 extra packages
such as wandb and datasets): weights-only, with the pickled ModalityRegistry read as an inert record.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from embeddings.encoders.base import SurveyContext
from embeddings.encoders.hub_weights import ASTROPT, ASTROPT_SIZE
from embeddings.encoders.imageprep import resize, row_cube, select_bands, viewer_rgb
from embeddings.encoders.pretrained import TorchEncoder, weights_revision
from embeddings.encoders.registry import WeightsConfig, register_encoder
from embeddings.encoders.weights import load_checkpoint, opaque_state, resolve_weights
from embeddings.models.astroclip_model import load_strict
from embeddings.models.astropt_gpt import AstroPT, GPTConfig, Modality, spiral_order

DEFAULT_SIZE = ASTROPT_SIZE
IMAGE_SIZE = 256  # upstream v2 training image_size (16 x 16 = 256 patch tokens)


def astropt_tokens(rgb: np.ndarray, patch: int = 16) -> np.ndarray:
    """C x H x W image (0-255 scale) -> (N, patch*patch*C) tokens: upstream's swapaxes(0, 2) on the HWC array,
    patches flattened as (p1 p2 c), each patch standardised (unbiased std + 1e-8), spiral order."""
    cwh = np.ascontiguousarray(rgb.transpose(0, 2, 1)).astype(np.float32)  # HWC.swapaxes(0, 2) == C, W, H
    c, h, w = cwh.shape
    if h % patch or w % patch or h != w:
        raise ValueError(f"image {h}x{w} must be square and a multiple of the {patch}px patch")
    n = h // patch
    tokens = cwh.reshape(c, n, patch, n, patch).transpose(1, 3, 2, 4, 0).reshape(n * n, patch * patch * c)
    mean = tokens.mean(axis=1, keepdims=True)
    std = tokens.std(axis=1, ddof=1, keepdims=True)
    return ((tokens - mean) / (std + 1e-8))[spiral_order(n)].astype(np.float32)


def astropt_input(row: dict, survey: SurveyContext, image_size: int = IMAGE_SIZE, patch: int = 16, channels: int = 3) -> np.ndarray:
    """Cutout -> AstroPT image tokens: Legacy viewer RGB on a 0-255 scale (like the JPEG training images),
    bilinear resize to image_size (galaxy fills the field), then `astropt_tokens`."""
    rgb = 255.0 * resize(viewer_rgb(select_bands(row_cube(row), tuple(survey.bands))), image_size)
    if channels == 1:
        rgb = rgb.mean(axis=0, keepdims=True)
    return astropt_tokens(rgb, patch)


def config_from_checkpoint(ckpt: dict) -> GPTConfig:
    """GPTConfig from the checkpoint's `model_args` and pickled ModalityRegistry (read as plain records)."""
    args = opaque_state(ckpt.get("model_args"))
    if int(args.get("lora_r") or 0) > 0:
        raise ValueError("LoRA-finetuned AstroPT checkpoints are not supported; use a pretrained (lora_r=0) checkpoint")
    registry = opaque_state(ckpt.get("modality_registry"))
    mods = []
    for name, record in (opaque_state(registry.get("modalities")) or {}).items():
        m = opaque_state(record)
        mods.append(Modality(name, int(m["input_size"]), int(m["patch_size"]), bool(m.get("embed_pos", True)), int(m.get("pos_input_size") or 1)))
    if not mods:  # pre-registry checkpoints: one image modality of 16x16 RGB patches
        mods = [Modality("images", 16 * 16 * int(args.get("n_chan", 3)), 16)]
    return GPTConfig(
        block_size=int(args.get("block_size", 1024)),
        n_layer=int(args["n_layer"]),
        n_head=int(args["n_head"]),
        n_embd=int(args["n_embd"]),
        bias=bool(args.get("bias", False)),
        attn_type=str(args.get("attn_type", "causal")),
        tokeniser=str(args.get("tokeniser", "aim")),
        output_dim=args.get("output_dim"),
        modalities=tuple(mods),
    )


class AstroPTEncoder(TorchEncoder):
    """AstroPT image embeddings (n_embd-d)."""

    name, modality = "astropt", "image"

    def __init__(self, model: AstroPT, weights_revision: str, image_size: int = IMAGE_SIZE, size: str = DEFAULT_SIZE):
        self.model, self.weights_revision, self.image_size = model.eval(), weights_revision, image_size
        if size != DEFAULT_SIZE:  # one space per model size
            self.name = f"astropt-{size}"
        self.dim = model.cfg.n_embd
        images = next((m for m in model.cfg.modalities if m.name == "images"), None)
        if images is None:
            raise ValueError("AstroPT checkpoint has no 'images' modality")
        self.patch, self.channels = images.patch_size, images.input_size // images.patch_size**2
        if (image_size // self.patch) ** 2 > model.cfg.block_size:
            raise ValueError(f"image_size {image_size} gives more patches than the block size {model.cfg.block_size}")
        self.preprocess_version = f"grz-viewerrgb(m=0.03,Q=20)x255-resize{image_size}-T-patch{self.patch}-std-spiral.v1"

    def preprocessor(self):
        return partial(astropt_input, image_size=self.image_size, patch=self.patch, channels=self.channels)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.embed(batch, "images")


@register_encoder(
    "astropt", name="astropt", modality="image", weights=WeightsConfig(ASTROPT.source, dim=768),
    description="AstroPT v2.0 GPT over spiral-ordered 16x16 patches (095M default)",
)
def astropt(checkpoint: str | None = None, size: str = DEFAULT_SIZE, image_size: int = IMAGE_SIZE) -> AstroPTEncoder:
    """AstroPT from Smith42/astroPT_v2.0 `astropt/<size>/ckpt.pt` (or `checkpoint=PATH`), loaded strictly."""
    found = resolve_weights(ASTROPT.folder, ASTROPT.repo, f"astropt/{size}/ckpt.pt", checkpoint)
    ckpt = load_checkpoint(found.path)
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    cfg = config_from_checkpoint(ckpt)
    model = load_strict(lambda: AstroPT(cfg), state)
    return AstroPTEncoder(model, weights_revision(found.path), image_size, size)
