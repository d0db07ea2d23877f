"""The self-supervised stages' inputs: astronomy-safe image views and masked spectra."""

from __future__ import annotations

import torch

from embeddings.builtin.msm import MASK_SPANS, SPAN_BINS, mask_spans, reconstruction_loss
from embeddings.builtin.views import ViewConfig, random_views

SOFT = torch.tensor([0.01, 0.02, 0.04])


def galaxy(n: int = 4, size: int = 56) -> torch.Tensor:
    """Round blobs whose flux in every band is the same number of softening units (no colour)."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    blob = torch.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / 20.0)
    return (blob[None, None] * SOFT.reshape(1, 3, 1, 1) * 30.0).repeat(n, 1, 1, 1)


def test_views_never_invent_colour_and_keep_the_object_centred():
    gen = torch.Generator().manual_seed(0)
    views = random_views(galaxy(), SOFT, gen, ViewConfig(noise=0.0, grey=0.0))
    assert views.shape == (4, 3, 48, 48)
    # a colourless object stays colourless through flux scaling, PSF, shift, zoom and rotation
    torch.testing.assert_close(views[:, 0], views[:, 1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(views[:, 1], views[:, 2], atol=1e-4, rtol=1e-4)
    peak = views[:, 0].flatten(1).argmax(1)
    assert ((peak // 48 - 24).abs() <= 6).all() and ((peak % 48 - 24).abs() <= 6).all()


def test_views_differ_from_each_other_and_grey_views_are_band_means():
    cube = galaxy(8) * torch.tensor([1.0, 2.0, 4.0]).reshape(1, 3, 1, 1)  # a red object
    gen = torch.Generator().manual_seed(1)
    a, b = random_views(cube, SOFT, gen), random_views(cube, SOFT, gen)
    assert not torch.allclose(a, b)
    grey = random_views(cube, SOFT, gen, ViewConfig(grey=1.0))
    torch.testing.assert_close(grey[:, 0], grey[:, 2])
    coloured = random_views(cube, SOFT, gen, ViewConfig(grey=0.0, noise=0.0))
    assert (coloured[:, 2].sum((1, 2)) > coloured[:, 0].sum((1, 2))).all()  # red stays red


def test_masked_spans_hide_flux_and_snr_only_and_the_loss_ignores_bins_without_data():
    spectra = torch.ones(5, 3, 972)
    masked = mask_spans(spectra, torch.Generator().manual_seed(0))
    hidden = masked[:, 0] == 0
    assert torch.equal(hidden, masked[:, 1] == 0) and (masked[:, 2] == 1).all()
    assert (hidden.sum(1) >= SPAN_BINS).all() and (hidden.sum(1) <= MASK_SPANS * SPAN_BINS).all()
    target = torch.zeros(2, 3, 972)
    target[:, 1, :100] = 0.5  # data only in the first 100 bins
    pred = torch.zeros(2, 972)
    pred[:, 100:] = 9.0  # wrong only where there is no data
    assert float(reconstruction_loss(pred, target)) == 0.0
    pred[:, :100] = 1.0
    assert float(reconstruction_loss(pred, target)) > 0.9
