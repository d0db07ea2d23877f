"""AstroDINO image backbone: a DINOv2-layout ViT whose parameter names match the official checkpoints.

Written for Arp to be state_dict compatible with `facebookresearch/dinov2@2302b6b` as AstroCLIP builds it
(vit_large, patch 12, 144 px, layer-scale, MLP FFN, 4 block chunks, no register tokens), without the
dinov2 package or xformers. Key layout: patch_embed.proj, cls_token, pos_embed, mask_token,
blocks.<chunk>.<i>.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}, norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTConfig:
    """Shape of the backbone; defaults are AstroDINO's (ViT-L/12 at 144 px)."""

    img_size: int = 144
    patch_size: int = 12
    in_chans: int = 3
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    layerscale: float | None = 1e-5
    block_chunks: int = 4
    num_register_tokens: int = 0
    interpolate_offset: float = 0.1


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (B, N, D)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.patch_size or x.shape[-2] % self.patch_size:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of the patch size {self.patch_size}")
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learned residual scale (`gamma`)."""

    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(init * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with layer-scale (eval mode: no drop-path)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads)
        self.ls1 = LayerScale(d, cfg.layerscale) if cfg.layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.ls2 = LayerScale(d, cfg.layerscale) if cfg.layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class BlockChunk(nn.ModuleList):
    """A run of blocks; leading Identity slots keep the global block index in the key names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x)
        return x


class AstroDinoViT(nn.Module):
    """The ViT backbone. `tokens(x)` is what AstroCLIP's image head uses; `forward(x)` is DINOv2's CLS output."""

    def __init__(self, cfg: ViTConfig = ViTConfig()):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        n_patches = (cfg.img_size // cfg.patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, d))
        self.register_tokens = nn.Parameter(torch.zeros(1, cfg.num_register_tokens, d)) if cfg.num_register_tokens else None
        blocks = [Block(cfg) for _ in range(cfg.depth)]
        if cfg.block_chunks > 0:
            size = cfg.depth // cfg.block_chunks
            self.blocks = nn.ModuleList(
                [BlockChunk([nn.Identity()] * i + blocks[i : i + size]) for i in range(0, cfg.depth, size)]
            )
        else:
            self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embed -> blocks -> norm, no CLS/positions: exactly AstroCLIP's ImageHead backbone pass."""
        return self.norm(self.run_blocks(self.patch_embed(x)))

    def _pos_embed(self, n_patches: int, w: int, h: int) -> torch.Tensor:
        n = self.pos_embed.shape[1] - 1
        if n_patches == n and w == h:
            return self.pos_embed
        m = int(math.sqrt(n))
        grid = self.pos_embed[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
        off = self.cfg.interpolate_offset
        w0, h0 = w // self.cfg.patch_size, h // self.cfg.patch_size
        grid = F.interpolate(grid, scale_factor=((w0 + off) / m, (h0 + off) / m), mode="bicubic")
        grid = grid.permute(0, 2, 3, 1).reshape(1, -1, grid.shape[1])
        return torch.cat([self.pos_embed[:, :1], grid.to(self.pos_embed.dtype)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """DINOv2 eval forward: normalised CLS token (AstroDINO's own embedding)."""
        _, _, w, h = x.shape
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        t = t + self._pos_embed(t.shape[1] - 1, w, h)
        if self.register_tokens is not None:
            t = torch.cat([t[:, :1], self.register_tokens.expand(t.shape[0], -1, -1), t[:, 1:]], dim=1)
        return self.norm(self.run_blocks(t))[:, 0]
