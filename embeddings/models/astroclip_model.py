"""AstroCLIP towers (backbone + cross-attention head + MLP) and strict loading of the official checkpoints.

Parameter names follow PolymathicAI/AstroCLIP `astroclip/models/astroclip.py` (ImageHead, SpectrumHead) and
`astroclip/modules.py` (CrossAttentionHead, MLP); a Lightning `astroclip.ckpt` holds them under
`image_encoder.` and `spectrum_encoder.`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from embeddings.models.astroclip_specformer import MLP, SpecFormer, SpecFormerConfig
from embeddings.models.astroclip_vit import AstroDinoViT, ViTConfig

VIT_HEAD_DIM = 64  # ViT-L: 1024 / 16 heads
SPECFORMER_HEAD_DIM = 128  # SpecFormer: 768 / 6 heads
CROSS_ATTENTION_HEADS = 4


class CrossAttentionHead(nn.Module):
    """One learned query attends over the backbone tokens, then LayerNorm."""

    def __init__(self, embed_dim: int, n_head: int, model_embed_dim: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, embed_dim))
        self.multihead_attn = nn.MultiheadAttention(
            embed_dim, n_head, batch_first=True, kdim=model_embed_dim, vdim=model_embed_dim
        )
        self.layernorm = nn.LayerNorm(embed_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        query = self.query.expand(tokens.shape[0], -1, -1)
        out = self.multihead_attn(query=query, key=tokens, value=tokens, need_weights=False)[0]
        return self.layernorm(out)


class ImageTower(nn.Module):
    """AstroDINO tokens -> cross-attention -> MLP (no residual, as upstream's ImageHead)."""

    def __init__(self, vit: ViTConfig = ViTConfig(), embed_dim: int = 1024, n_head: int = CROSS_ATTENTION_HEADS):
        super().__init__()
        self.backbone = AstroDinoViT(vit)
        self.cross_attention = CrossAttentionHead(embed_dim, n_head, vit.embed_dim)
        self.mlp = MLP(embed_dim, 4 * embed_dim)  # AstroCLIP's modules.MLP

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.cross_attention(self.backbone.tokens(image)))[:, 0]


class SpectrumTower(nn.Module):
    """SpecFormer tokens -> cross-attention -> x + MLP(x) (as upstream's SpectrumHead)."""

    def __init__(self, spec: SpecFormerConfig = SpecFormerConfig(), embed_dim: int = 1024, n_head: int = CROSS_ATTENTION_HEADS):
        super().__init__()
        self.backbone = SpecFormer(spec)
        self.cross_attention = CrossAttentionHead(embed_dim, n_head, spec.embed_dim)
        self.mlp = MLP(embed_dim, 4 * embed_dim)  # AstroCLIP's modules.MLP

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        x = self.cross_attention(self.backbone(flux))
        return (x + self.mlp(x))[:, 0]


def load_strict(factory: Callable[[], nn.Module], state: dict[str, torch.Tensor]) -> nn.Module:
    """Build `factory()` without initialising weights (meta device), take `state` strictly, fp32, eval mode."""
    with torch.device("meta"):
        model = factory()
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().eval()


def vit_config_from_state(sd: dict[str, torch.Tensor], num_heads: int | None = None) -> ViTConfig:
    """Infer the ViT shape from backbone keys (patch_embed.proj, pos_embed, blocks.*)."""
    w = sd["patch_embed.proj.weight"]
    dim, chans, patch = w.shape[0], w.shape[1], w.shape[2]
    n_patches = sd["pos_embed"].shape[1] - 1
    chunked = [tuple(map(int, m.groups())) for k in sd if (m := re.match(r"blocks\.(\d+)\.(\d+)\.norm1\.weight$", k))]
    flat = [int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.norm1\.weight$", k))]
    depth = len(chunked) if chunked else len(flat)
    reg = sd.get("register_tokens")
    return ViTConfig(
        img_size=int(round(n_patches**0.5)) * patch,
        patch_size=patch,
        in_chans=chans,
        embed_dim=dim,
        depth=depth,
        num_heads=num_heads or max(1, dim // VIT_HEAD_DIM),
        mlp_ratio=sd[next(k for k in sd if k.endswith("mlp.fc1.weight"))].shape[0] / dim,
        layerscale=1e-5 if any(k.endswith("ls1.gamma") for k in sd) else None,
        block_chunks=len({c for c, _ in chunked}) if chunked else 0,
        num_register_tokens=0 if reg is None else reg.shape[1],
    )


def specformer_config_from_state(sd: dict[str, torch.Tensor], hparams: dict | None = None) -> SpecFormerConfig:
    """Infer SpecFormer's shape from its keys; plain hyper-parameters (if readable) give the head count."""
    dim = sd["data_embed.weight"].shape[0]
    layers = len({int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    hp = hparams or {}
    heads = hp.get("num_heads") if isinstance(hp.get("num_heads"), int) else max(1, dim // SPECFORMER_HEAD_DIM)
    return SpecFormerConfig(
        input_dim=sd["data_embed.weight"].shape[1],
        embed_dim=dim,
        num_layers=layers,
        num_heads=heads,
        max_len=sd["position_embed.weight"].shape[0],
        slice_section_length=int(hp.get("slice_section_length", 20)),
        slice_overlap=int(hp.get("slice_overlap", 10)),
    )


def build_image_tower(sd: dict[str, torch.Tensor], n_head: int = CROSS_ATTENTION_HEADS, vit_heads: int | None = None) -> ImageTower:
    """An ImageTower shaped like `sd` (keys relative to `image_encoder.`), loaded with strict=True."""
    vit = vit_config_from_state({k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")}, vit_heads)
    return load_strict(lambda: ImageTower(vit, embed_dim=sd["cross_attention.query"].shape[-1], n_head=n_head), sd)


def build_spectrum_tower(sd: dict[str, torch.Tensor], n_head: int = CROSS_ATTENTION_HEADS, spec_heads: int | None = None) -> SpectrumTower:
    """A SpectrumTower shaped like `sd` (keys relative to `spectrum_encoder.`), loaded with strict=True."""
    spec = specformer_config_from_state(
        {k[len("backbone.") :]: v for k, v in sd.items() if k.startswith("backbone.")},
        {"num_heads": spec_heads} if spec_heads else None,
    )
    return load_strict(lambda: SpectrumTower(spec, embed_dim=sd["cross_attention.query"].shape[-1], n_head=n_head), sd)


def split_astroclip_state(state_dict: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Split an `astroclip.ckpt` state_dict into (image, spectrum) tower dicts; unknown keys are an error."""
    image, spectrum, other = {}, {}, []
    for key, value in state_dict.items():
        if key.startswith("image_encoder."):
            image[key[len("image_encoder.") :]] = value
        elif key.startswith("spectrum_encoder."):
            spectrum[key[len("spectrum_encoder.") :]] = value
        else:
            other.append(key)
    if other:
        raise ValueError(f"unexpected keys in AstroCLIP checkpoint (not image_encoder./spectrum_encoder.): {other[:5]}")
    if not image or not spectrum:
        raise ValueError("checkpoint lacks image_encoder.* or spectrum_encoder.* keys: is this astroclip.ckpt?")
    return image, spectrum
