"""Astronomy-safe random views of g,r,z cutouts for self-supervised image pretraining (torch, batched).

Applied to linear-flux cubes before the arcsinh stretch, so each step is physical: one flux scale for
all bands, a Gaussian PSF broadening, extra Gaussian noise at up to the band's noise level, a
continuous (sub-pixel) shift with a +-10% scale change, one of the 8 rot90/flip orientations, then
the stretch; last, with probability `grey`, every band is replaced by the mean of the three (colour
removed, never invented). lightly's transforms work on PIL RGB pictures and jitter hue and
saturation, which would invent colours: these views are written here for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from embeddings.encoders import arp_preprocess as pp

# the 8 orientations (rot90 x flip) as 2x2 matrices acting on (x, y) sampling coordinates
_ORIENT = torch.tensor([[[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]], [[0, 1], [-1, 0]],
                        [[-1, 0], [0, 1]], [[0, 1], [1, 0]], [[1, 0], [0, -1]], [[0, -1], [-1, 0]]], dtype=torch.float32)


@dataclass(frozen=True)
class ViewConfig:
    """Ranges of the random view parameters."""

    log_flux: float = 0.3  # flux scale 10**U(-x, x), all bands together
    psf_sigma: float = 1.0  # extra Gaussian PSF sigma U(0, x) px
    noise: float = 1.0  # extra noise U(0, x) times each band's noise level
    shift: float = 4.0  # translation U(-x, x) px (continuous)
    scale: float = 0.1  # zoom 1 + U(-x, x)
    grey: float = 0.25  # probability of the band-mean (colourless) view


def _blur(cube: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-object Gaussian blur (sigma in px, 0 = unchanged) with a 7x7 kernel, one grouped conv."""
    n, c, h, w = cube.shape
    r = torch.arange(-3, 4, dtype=cube.dtype)
    g = torch.exp(-0.5 * (r[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    g = g / g.sum(dim=1, keepdim=True)
    kernel = (g[:, :, None] * g[:, None, :]).repeat_interleave(c, dim=0)[:, None]
    out = F.conv2d(F.pad(cube.reshape(1, n * c, h, w), (3, 3, 3, 3), mode="reflect"), kernel, groups=n * c)
    return out.reshape(n, c, h, w)


def random_views(cube: torch.Tensor, softening: torch.Tensor, generator: torch.Generator | None = None,
                 cfg: ViewConfig = ViewConfig(), size: int = pp.IMAGE_SIZE) -> torch.Tensor:
    """Stretched random views (N, 3, size, size) of linear-flux cubes (N, 3, H, W) with H >= size."""
    n, c, h, _ = cube.shape

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    soft = softening.reshape(1, c, 1, 1)
    x = cube * (10.0 ** ((2 * u(n) - 1) * cfg.log_flux)).reshape(n, 1, 1, 1)
    x = _blur(x, u(n) * cfg.psf_sigma)
    x = x + torch.randn(x.shape, generator=generator) * soft * (u(n) * cfg.noise).reshape(n, 1, 1, 1)
    zoom = (size / h) / (1 + (2 * u(n) - 1) * cfg.scale)
    linear = _ORIENT[torch.randint(0, 8, (n,), generator=generator)] * zoom.reshape(n, 1, 1)
    shift = (2 * u(n, 2) - 1) * cfg.shift * 2 / h
    theta = torch.cat([linear, shift[:, :, None]], dim=2)
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    x = torch.asinh(x / soft)
    grey = u(n) < cfg.grey
    return torch.where(grey.reshape(n, 1, 1, 1), x.mean(dim=1, keepdim=True).expand_as(x), x)
