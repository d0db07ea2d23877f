"""Arp's builtin family: two self-supervised towers and the contrastive heads that align them.

nanoGPT-style: the config dataclass at the top, then the towers, then the whole family. The
AstroCLIP recipe at small scale: the image backbone is pretrained alone (SimCLR on astronomy-safe
views), the spectrum backbone alone (masked-spectrum modelling), then two small heads map both into
one space with a symmetric InfoNCE loss. As in AstroCLIP, the alignment fine-tunes the image tower:
a copy of it (`pair_image_backbone`, initialised from the pretrained one) trains with the heads, so
the unimodal morphology space stays the self-supervised one. Three spaces come out: `morphology`
(image backbone), `spectrum` (spectrum latent) and the aligned pair (`pair_image`, `pair_spectrum`).
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

    embed_dim: int = 128  # aligned space
    image_channels: int = 3
    image_widths: tuple[int, ...] = (16, 32, 64, 128)
    spectrum_channels: int = 3
    spectrum_widths: tuple[int, ...] = (32, 48, 64, 96, 128)
    spectrum_pool: int = 16  # positions kept before flattening: line positions carry the redshift
    spectrum_dim: int = 32  # the unimodal spectrum space (masked-modelling latent: small, so it keeps the main modes)
    spectrum_length: int = 972
    hidden: int = 256
    init_temperature: float = 0.07

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> PairConfig:
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def image_dim(self) -> int:
        """Width of the morphology space (mean + max pooled last stage)."""
        return 2 * self.image_widths[-1]


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Two linear layers with a GELU between (projection and alignment heads)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))


class ImageBackbone(nn.Module):
    """Strided 3x3 conv stages (two convs each after the stem) with BatchNorm; mean + max pooled features."""

    def __init__(self, cfg: PairConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.image_channels
        for i, width in enumerate(cfg.image_widths):
            layers += [nn.Conv2d(c_in, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.GELU()]
            if i > 0:  # a second conv per stage once the resolution is low enough to afford it
                layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.GELU()]
            c_in = width
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


class SpectrumBackbone(nn.Module):
    """Strided 1-D conv blocks pooled to fixed positions, flattened, then an MLP to the latent.

    A linear path from the full-resolution flux channel is added to the latent: pooling blurs line
    positions to ~400 A, the linear path keeps them (redshift) at the input's 6.4 A bins.
    """

    def __init__(self, cfg: PairConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.spectrum_channels
        for i, width in enumerate(cfg.spectrum_widths):
            k = 7 if i == 0 else 5
            layers += [nn.Conv1d(c_in, width, k, stride=2, padding=k // 2), nn.BatchNorm1d(width), nn.GELU()]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(cfg.spectrum_pool)
        self.latent = mlp(c_in * cfg.spectrum_pool + cfg.spectrum_channels, 2 * cfg.hidden, cfg.spectrum_dim)
        self.linear = nn.Linear(cfg.spectrum_length, cfg.spectrum_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the per-channel input means (incl. the amplitude level) go straight to the latent
        h = torch.cat([self.pool(self.features(x)).flatten(1), x.mean(dim=2)], dim=1)
        return self.latent(h) + self.linear(x[:, 0])


class ArpPair(nn.Module):
    """Both backbones, the two alignment heads and the learnable temperature of the InfoNCE loss."""

    def __init__(self, cfg: PairConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or PairConfig()
        c = self.cfg
        self.image_backbone = ImageBackbone(c)
        self.spectrum_backbone = SpectrumBackbone(c)
        self.pair_image_backbone = ImageBackbone(c)  # fine-tuned copy of image_backbone for the aligned space
        # the image head also sees the mean stretched flux per band in three apertures: colour, its gradient and
        # brightness carry redshift, which the shape-only morphology space leaves out
        self.image_head = mlp(c.image_dim + 3 * c.image_channels, c.hidden, c.embed_dim)
        self.spectrum_head = mlp(c.spectrum_dim, c.hidden, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / c.init_temperature)))
        # per-dimension mean/std of the unimodal spaces on the training split (set after pretraining)
        self.register_buffer("image_mean", torch.zeros(c.image_dim))
        self.register_buffer("image_std", torch.ones(c.image_dim))
        self.register_buffer("spectrum_mean", torch.zeros(c.spectrum_dim))
        self.register_buffer("spectrum_std", torch.ones(c.spectrum_dim))

    def morphology(self, images: torch.Tensor) -> torch.Tensor:
        """The unimodal image space: self-supervised backbone features, standardised."""
        return (self.image_backbone(images) - self.image_mean) / self.image_std

    def spectrum(self, spectra: torch.Tensor) -> torch.Tensor:
        """The unimodal spectrum space: the latent's full-resolution linear path, standardised.

        Measured on the demo's test split, the linear path alone keeps redshift (kNN R^2 0.98) better
        than the whole latent (0.91): the pooled conv path adds what the decoder needs for the
        continuum but blurs line positions.
        """
        return (self.spectrum_backbone.linear(spectra[:, 0]) - self.spectrum_mean) / self.spectrum_std

    @staticmethod
    def aperture_fluxes(images: torch.Tensor) -> torch.Tensor:
        """Mean stretched flux per band inside radius 4 px, 12 px and over the whole stamp (N, 3 * bands)."""
        h, w = images.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h, device=images.device), torch.arange(w, device=images.device), indexing="ij")
        r = torch.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
        parts = [(images * (r <= rad)).sum(dim=(2, 3)) / (r <= rad).sum() for rad in (4.0, 12.0)]
        return torch.cat([*parts, images.mean(dim=(2, 3))], dim=1)

    def align_image(self, morphology: torch.Tensor, apertures: torch.Tensor) -> torch.Tensor:
        """Aligned vector from the morphology vector and the aperture fluxes of the input."""
        return F.normalize(self.image_head(torch.cat([morphology, apertures], dim=1)), dim=-1)

    def align_spectrum(self, spectrum: torch.Tensor) -> torch.Tensor:
        """Aligned vector from the spectrum vector."""
        return F.normalize(self.spectrum_head(spectrum), dim=-1)

    def pair_image(self, images: torch.Tensor) -> torch.Tensor:
        """Image into the aligned (cross-modal) space, through the fine-tuned copy of the image tower."""
        features = (self.pair_image_backbone(images) - self.image_mean) / self.image_std
        return self.align_image(features, self.aperture_fluxes(images))

    def pair_spectrum(self, spectra: torch.Tensor) -> torch.Tensor:
        """Spectrum into the aligned (cross-modal) space."""
        return self.align_spectrum(self.spectrum(spectra))

    def info_nce(self, zi: torch.Tensor, zs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetric InfoNCE over the batch; returns (loss, image-to-spectrum top-1 accuracy)."""
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * zi @ zs.T
        target = torch.arange(len(zi), device=zi.device)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        return loss, (logits.argmax(dim=1) == target).float().mean()
