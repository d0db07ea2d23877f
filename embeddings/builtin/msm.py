"""Stage 2: masked-spectrum modelling (SpecFormer-style objective on a conv encoder with a latent bottleneck).

Random spans of each input spectrum are hidden (flux and S/N channels set to 0, the "no data"
convention of the preprocessing); a small decoder rebuilds the whole normalised flux channel from
the latent alone, weighted by each bin's S/N (capped). To rebuild the lines the latent has to keep
where they are, i.e. the redshift, which is what the unimodal spectrum space is for.
"""

from __future__ import annotations

import numpy as np

from embeddings.builtin.loop import StageConfig, run_stage

MASK_SPANS = 6  # hidden spans per spectrum
SPAN_BINS = 24  # bins per span (6.4 A each: about 150 A)
SNR_CAP = 5.0  # per-bin S/N above which a bin weighs no more in the loss


def mask_spans(spectra, generator):
    """Copy of (N, C, L) spectra with MASK_SPANS random spans of SPAN_BINS hidden in the flux and S/N channels."""
    import torch

    n, _, length = spectra.shape
    starts = torch.randint(0, length - SPAN_BINS, (n, MASK_SPANS), generator=generator)
    pos = torch.arange(length)
    hidden = ((pos[None, None, :] >= starts[:, :, None]) & (pos[None, None, :] < starts[:, :, None] + SPAN_BINS)).any(1)
    out = spectra.clone()
    out[:, :2] = out[:, :2].masked_fill(hidden[:, None, :], 0.0)
    return out


def reconstruction_loss(pred, spectra):
    """S/N-weighted squared error of the rebuilt flux channel (bins without data weigh 0)."""
    import torch

    snr = torch.sinh(4.0 * spectra[:, 1])  # inverse of the S/N channel: amplitude * sqrt(ivar)
    weight = snr.clamp(max=SNR_CAP) ** 2
    return (weight * (pred - spectra[:, 0]) ** 2).sum() / weight.sum().clamp(min=1.0)


def pca_init(backbone, flux) -> None:
    """Start the backbone's linear path at the principal components of the training flux channel, the MLP path at 0.

    The latent then begins as a PCA of the spectra (which already orders them by redshift) and
    masked modelling refines it; unsupervised, from the training split's spectra only.
    """
    import torch

    with torch.no_grad():
        mean = flux.mean(dim=0)
        _, _, vt = torch.linalg.svd(flux - mean, full_matrices=False)
        comps = vt[: backbone.linear.out_features]
        backbone.linear.weight.copy_(comps)
        backbone.linear.bias.copy_(-comps @ mean)
        backbone.latent[-1].weight.zero_()
        backbone.latent[-1].bias.zero_()


def pretrain_spectrum(backbone, spectra, train_rows: np.ndarray, val_rows: np.ndarray, cfg: StageConfig,
                      *, hidden: int = 512, seed: int = 0, progress: bool = True) -> dict:
    """Masked-spectrum modelling on `backbone` with a throw-away MLP decoder; returns the stage summary."""
    import torch

    from embeddings.models.arp_pair import mlp

    with torch.no_grad():
        latent_dim = backbone(spectra[:2]).shape[1]
    pca_init(backbone, spectra[torch.from_numpy(train_rows), 0])
    decoder = mlp(latent_dim, hidden, spectra.shape[2])
    model = torch.nn.ModuleDict({"backbone": backbone, "decoder": decoder})
    gen = torch.Generator().manual_seed(seed)

    def loss_on(rows: np.ndarray, generator: torch.Generator) -> tuple:
        batch = spectra[torch.from_numpy(rows)]
        return (reconstruction_loss(decoder(backbone(mask_spans(batch, generator))), batch),)

    def val_loss() -> float:
        fixed = torch.Generator().manual_seed(seed + 1)
        model.eval()
        with torch.no_grad():
            parts = [float(loss_on(val_rows[i : i + cfg.batch], fixed)[0]) for i in range(0, len(val_rows), cfg.batch)]
        return float(np.mean(parts))

    return run_stage("spectrum-masked", model, len(train_rows), lambda rows: loss_on(train_rows[rows], gen), val_loss,
                     cfg, seed=seed, progress=progress)
