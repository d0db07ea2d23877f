"""SpecFormer, AstroCLIP's spectrum backbone, with the official checkpoint's parameter names.

Written for Arp to be state_dict compatible with PolymathicAI/AstroCLIP `astroclip/models/specformer.py`
(input_dim 22, embed 768, 6 layers, 6 heads, max_len 800). Keys: data_embed, position_embed,
blocks.<i>.{layernorm1,attention.attention,attention.projection,layernorm2,mlp.encoder,mlp.decoder},
final_layernorm, head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SpecFormerConfig:
    """SpecFormer hyper-parameters as stored in the official checkpoint's `hyper_parameters`."""

    input_dim: int = 22
    embed_dim: int = 768
    num_layers: int = 6
    num_heads: int = 6
    max_len: int = 800
    slice_section_length: int = 20
    slice_overlap: int = 10


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention; `attention` is the fused qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.attention = nn.Linear(dim, 3 * dim, bias=True)
        self.projection = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.num_heads, c // self.num_heads).transpose(1, 2) for z in self.attention(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.projection(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    """encoder -> GELU -> decoder."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.encoder = nn.Linear(dim, hidden)
        self.decoder = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(F.gelu(self.encoder(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(ln(x)); x + mlp(ln(x))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.layernorm1 = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, num_heads)
        self.layernorm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm1(x))
        return x + self.mlp(self.layernorm2(x))


def spectrum_tokens(flux: torch.Tensor, section: int = 20, overlap: int = 10) -> torch.Tensor:
    """SpecFormer's input recipe: (B, L) flux -> (B, 1 + n_windows, section + 2) tokens.

    Per spectrum: standardise (std clipped below at 0.2), cut windows of `section` pixels every
    `section - overlap`, dropping the last start (as upstream does), left-pad each window with two
    zeros, and prepend a token carrying ((mean - 2) / 2, (std - 2) / 8).
    """
    if flux.ndim == 3:
        flux = flux[..., 0]
    std, mean = flux.std(1, keepdim=True).clamp(min=0.2), flux.mean(1, keepdim=True)
    x = (flux - mean) / std
    starts = range(0, x.shape[1] - overlap, section - overlap)
    windows = torch.stack([x[:, s : s + section] for s in starts][:-1], dim=1)
    tokens = F.pad(windows, (2, 0, 1, 0))
    tokens[:, 0, 0] = (mean[:, 0] - 2) / 2
    tokens[:, 0, 1] = (std[:, 0] - 2) / 8
    return tokens


class SpecFormer(nn.Module):
    """Masked-modelling spectrum transformer; `forward` returns per-token embeddings (B, T, D)."""

    def __init__(self, cfg: SpecFormerConfig = SpecFormerConfig()):
        super().__init__()
        self.cfg = cfg
        self.data_embed = nn.Linear(cfg.input_dim, cfg.embed_dim)
        self.position_embed = nn.Embedding(cfg.max_len, cfg.embed_dim)
        self.blocks = nn.ModuleList([TransformerBlock(cfg.embed_dim, cfg.num_heads) for _ in range(cfg.num_layers)])
        self.final_layernorm = nn.LayerNorm(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.input_dim)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T, input_dim) -> final-layernormed embeddings (B, T, D)."""
        t = tokens.shape[1]
        if t > self.cfg.max_len:
            raise ValueError(f"spectrum gives {t} tokens, SpecFormer takes at most {self.cfg.max_len}")
        x = self.data_embed(tokens) + self.position_embed(torch.arange(t, device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.final_layernorm(x)

    def forward(self, flux: torch.Tensor) -> torch.Tensor:
        """Flux (B, L) or (B, L, 1) on the 7781-pixel grid -> embeddings (B, T, D)."""
        tokens = spectrum_tokens(flux, self.cfg.slice_section_length, self.cfg.slice_overlap)
        return self.embed_tokens(tokens.to(self.data_embed.weight.dtype))
