"""Arp's own contrastive pair: a small image CNN and a small 1-D spectrum CNN projected into one space.

nanoGPT-style: the config dataclass at the top, then the towers, then the pair with its symmetric
InfoNCE loss (learnable temperature, as in CLIP / AstroCLIP).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PairConfig:
    """Architecture hyper-parameters (stored in the safetensors metadata)."""

    embed_dim: int = 128
    image_channels: int = 3
    image_widths: tuple[int, ...] = (24, 48, 96, 128)
    spectrum_channels: int = 3
    spectrum_widths: tuple[int, ...] = (32, 48, 64, 96, 128)
    spectrum_pool: int = 16  # positions kept before flattening: line positions carry the redshift
    hidden: int = 256
    init_temperature: float = 0.07
    norm: str = "batch"  # "batch" | "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> PairConfig:
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    """Normalisation after a conv (training re-estimates BatchNorm statistics exactly, see train.py)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    return nn.Identity()


def _head(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


class ImageTower(nn.Module):
    """Strided 3x3 conv stages (two convs each after the stem) with batch norm, global average + max pooling, projection head."""

    def __init__(self, cfg: PairConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.image_channels
        for i, width in enumerate(cfg.image_widths):
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1), _norm(cfg.norm, width, 2), nn.GELU()]
            if i > 0:  # a second conv per stage once the resolution is low enough to afford it
                layers += [nn.Conv2d(width, width, 3, padding=1), _norm(cfg.norm, width, 2), nn.GELU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = _head(2 * c_in + cfg.image_channels, cfg.hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        # the mean stretched flux per band goes straight to the head: brightness and colour survive normalisation
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)
        return F.normalize(self.head(pooled), dim=-1)


class SpectrumTower(nn.Module):
    """Strided 1-D conv blocks, pooled to a fixed number of positions and flattened, projection head."""

    def __init__(self, cfg: PairConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.spectrum_channels
        for i, width in enumerate(cfg.spectrum_widths):
            k = 7 if i == 0 else 5
            layers += [nn.Conv1d(c_in, width, k, stride=2, padding=k // 2), _norm(cfg.norm, width, 1), nn.GELU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(cfg.spectrum_pool)
        self.head = _head(c_in * cfg.spectrum_pool + cfg.spectrum_channels, cfg.hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the per-channel input means (incl. the amplitude level) go straight to the head
        h = torch.cat([self.pool(self.features(x)).flatten(1), x.mean(dim=2)], dim=1)
        return F.normalize(self.head(h), dim=-1)


class ArpPair(nn.Module):
    """Both towers and the learnable temperature of the symmetric InfoNCE loss."""

    def __init__(self, cfg: PairConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or PairConfig()
        self.image = ImageTower(self.cfg)
        self.spectrum = SpectrumTower(self.cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / self.cfg.init_temperature)))

    def loss(self, images: torch.Tensor, spectra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE over the batch; returns (loss, image-to-spectrum top-1 accuracy)."""
        zi, zs = self.image(images), self.spectrum(spectra)
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * zi @ zs.T
        target = torch.arange(len(zi), device=zi.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        acc = (logits.argmax(dim=1) == target).float().mean()
        return loss, acc
