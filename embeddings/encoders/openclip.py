"""open_clip image+text CLIP models: image embeddings of cutouts, and `embed_text` for text search in the same space."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np
import torch

from embeddings.encoders.base import SurveyContext
from embeddings.encoders.hub_weights import OPENCLIP, HubWeights
from embeddings.encoders.imageprep import resize, row_cube, select_bands, viewer_rgb
from embeddings.encoders.pretrained import TorchEncoder, weights_revision
from embeddings.encoders.registry import WeightsConfig, register_encoder
from embeddings.encoders.weights import WeightsNotFoundError

DEFAULT_MODEL, DEFAULT_TAG = "ViT-B-32", "laion2b_s34b_b79k"
HUB_FILES = OPENCLIP.files


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def clip_input(row: dict, survey: SurveyContext, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Cutout -> CLIP input: Legacy viewer RGB in [0, 1], bilinear resize to size, per-channel (x - mean) / std."""
    rgb = resize(viewer_rgb(select_bands(row_cube(row), tuple(survey.bands))), size)
    return ((rgb - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]).astype(np.float32)


class OpenClipImageEncoder(TorchEncoder):
    """CLIP image tower over Legacy-viewer RGB cutouts; `embed_text` gives text vectors in the same space."""

    modality = "image"

    def __init__(self, model: torch.nn.Module, tokenizer, name: str, weights_revision: str):
        self.model, self.tokenizer, self.name, self.weights_revision = model.eval(), tokenizer, name, weights_revision
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", model.visual.image_size)
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.mean = np.asarray(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), np.float32)[:, None, None]
        self.std = np.asarray(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), np.float32)[:, None, None]
        self.dim = int(model.text_projection.shape[1] if hasattr(model, "text_projection") and model.text_projection is not None else model.visual.output_dim)
        self.aligned_group = name.removesuffix("-image")
        self.preprocess_version = f"grz-viewerrgb(m=0.03,Q=20)-resize{self.size}-clipnorm.v1"

    def preprocessor(self):
        return partial(clip_input, size=self.size, mean=tuple(self.mean.ravel()), std=tuple(self.std.ravel()))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(batch)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Text prompts -> float32 (N, dim) vectors in the image space (compare with cosine similarity)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu().numpy()


def _hub_weights(model: str, tag: str):
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    repo = (cfg or {}).get("hf_hub", "").strip("/")
    if not repo:
        raise WeightsNotFoundError(
            f"open_clip has no Hugging Face copy of {model}/{tag}; download its weights file and pass checkpoint=PATH"
        )
    return HubWeights(f"openclip-{_slug(model)}-{_slug(tag)}", repo, HUB_FILES).resolve()


def load_openclip(model: str = DEFAULT_MODEL, pretrained: str | None = None, checkpoint: str | None = None, model_config: str | None = None) -> OpenClipImageEncoder:
    """Create `model` (an open_clip config name, or one added from `model_config` JSON) and load its weights strictly."""
    import open_clip

    if model_config is not None:
        open_clip.add_model_config(Path(model_config))
    if model not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {model!r}; pass model_config=PATH to a model JSON or pick one of open_clip.list_models()")
    tag = pretrained or (DEFAULT_TAG if model == DEFAULT_MODEL else None)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"open_clip checkpoint {path} does not exist")
        revision = weights_revision(path)
    elif tag is None:
        raise ValueError(f"no weights for {model!r}: give pretrained=<open_clip tag> or checkpoint=PATH")
    else:
        path = _hub_weights(model, tag).path
        revision = weights_revision(path)
    net = open_clip.create_model(model, pretrained=str(path), weights_only=True)
    name = "openclip-image" if (model, tag) == (DEFAULT_MODEL, DEFAULT_TAG) else "-".join(["openclip", _slug(model), *([_slug(tag)] if tag else []), "image"])
    return OpenClipImageEncoder(net, open_clip.get_tokenizer(model), name, revision)


@register_encoder(
    "openclip", modality="image",
    weights=WeightsConfig(OPENCLIP.source, dim=512),
    description="open_clip CLIP image tower (ViT-B-32 laion2b default); text search via embed_text",
)
def openclip_image(checkpoint: str | None = None, model: str = DEFAULT_MODEL, pretrained: str | None = None, model_config: str | None = None) -> OpenClipImageEncoder:
    """open_clip model `model` with weights tag `pretrained` from the hub, or a local `checkpoint` file."""
    return load_openclip(model, pretrained, checkpoint, model_config)
