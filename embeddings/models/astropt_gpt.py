"""AstroPT's GPT (Smith et al.), state_dict compatible with Smith42/astroPT v2.0.x `src/astropt/model.py`.

Written for Arp from reading upstream: per-modality MLP tokenisers `transformer.wte.<mod>`, position
embedders `transformer.wpe.<mod>`, blocks `transformer.h.<i>.{ln_1,attn.c_attn,attn.c_proj,ln_2,mlp.c_fc,mlp.c_proj}`,
`transformer.ln_f`, decoders `lm_head.<mod>`. Only what embedding needs runs; the rest is loaded for strictness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Modality:
    """One modality as stored in the checkpoint's ModalityRegistry."""

    name: str
    input_size: int
    patch_size: int
    embed_pos: bool = True
    pos_input_size: int = 1


@dataclass(frozen=True)
class GPTConfig:
    """The checkpoint's `model_args` (fields Arp uses)."""

    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    bias: bool = False
    attn_type: str = "causal"
    tokeniser: str = "aim"
    output_dim: int | None = None
    modalities: tuple[Modality, ...] = field(default_factory=tuple)


class LayerNorm(nn.Module):
    """LayerNorm with optional bias (eps 1e-5)."""

    def __init__(self, n: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # upstream's new_gelu


class SelfAttention(nn.Module):
    """Fused qkv attention; causal, or full (upstream's prefix mode runs its blocks without a mask)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.n_head, self.causal = cfg.n_head, cfg.attn_type == "causal"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in self.c_attn(x).split(c, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(_gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(cfg.n_embd, cfg.bias), SelfAttention(cfg)
        self.ln_2, self.mlp = LayerNorm(cfg.n_embd, cfg.bias), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Projector(nn.Module):
    """Upstream Encoder/Decoder: affine (`c_fc`) or AIM MLP (`c_fc` -> GELU -> `c_proj`)."""

    def __init__(self, cfg: GPTConfig, n_in: int, n_out: int):
        super().__init__()
        self.affine = cfg.tokeniser == "affine"
        self.c_fc = nn.Linear(n_in, n_out if self.affine else 4 * cfg.n_embd, bias=cfg.bias)
        if not self.affine:
            self.c_proj = nn.Linear(4 * cfg.n_embd, n_out, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_fc(x) if self.affine else self.c_proj(_gelu(self.c_fc(x)))


class Embedder(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.wpe(pos)


class TaskHead(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln = LayerNorm(cfg.n_embd, cfg.bias)
        self.head = nn.Sequential(nn.Linear(cfg.n_embd, cfg.n_embd // 2), nn.ReLU(), nn.Linear(cfg.n_embd // 2, cfg.output_dim))


class AstroPT(nn.Module):
    """AstroPT GPT; `embed(tokens, modality)` is upstream's generate_embeddings(reduction="mean")."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        mods = {m.name: m for m in cfg.modalities}
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.ModuleDict({n: Projector(cfg, m.input_size, cfg.n_embd) for n, m in mods.items()}),
                "wpe": nn.ModuleDict(
                    {n: Embedder(cfg) if m.embed_pos else Projector(cfg, m.pos_input_size, cfg.n_embd) for n, m in mods.items()}
                ),
                "h": nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                "ln_f": LayerNorm(cfg.n_embd, cfg.bias),
            }
        )
        self.lm_head = nn.ModuleDict({n: Projector(cfg, cfg.n_embd, m.input_size) for n, m in mods.items()})
        self.task_head = TaskHead(cfg) if cfg.output_dim else None

    def embed(self, tokens: torch.Tensor, modality: str = "images") -> torch.Tensor:
        """Tokens (B, T, input_size) -> mean over tokens of the hidden state after block n_layer // 2."""
        if tokens.shape[1] > self.cfg.block_size:
            raise ValueError(f"{tokens.shape[1]} tokens exceed AstroPT's block size {self.cfg.block_size}")
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.transformer.wte[modality](tokens) + self.transformer.wpe[modality](pos)
        for block in self.transformer.h[: self.cfg.n_layer // 2 + 1]:
            x = block(x)
        return x.mean(dim=1)


def spiral_order(n: int) -> np.ndarray:
    """Raster indices of an n x n patch grid in AstroPT's spiral order: centre first, winding outwards.

    Built by peeling the grid's rings from the outside (top row left->right, right column down, bottom row
    right->left, left column up) and reversing the whole walk.
    """
    grid = np.arange(n * n).reshape(n, n)
    walk: list[int] = []
    while grid.size:
        walk += list(grid[0])
        if grid.shape[0] > 1:
            walk += list(grid[1:, -1])
            walk += list(grid[-1, :-1][::-1])
            if grid.shape[1] > 1:
                walk += list(grid[1:-1, 0][::-1])
        grid = grid[1:-1, 1:-1]
    return np.asarray(walk[::-1])
