"""Stage 3: contrastive alignment heads (symmetric InfoNCE) on the frozen, pretrained towers.

The towers' vectors are computed once (centre crops, un-masked spectra); only the two small heads
and the temperature train, which takes seconds per epoch.
"""

from __future__ import annotations

import numpy as np

from embeddings.builtin.loop import StageConfig, run_stage


def align_heads(model, morphology, band_means, spectrum, train_rows: np.ndarray, val_rows: np.ndarray,
                cfg: StageConfig, *, seed: int = 0, progress: bool = True) -> dict:
    """Train `model`'s alignment heads on precomputed tower vectors (tensors, one row per object)."""
    import torch

    for tower in (model.image_backbone, model.spectrum_backbone):
        tower.requires_grad_(False)

    def loss_on(rows: np.ndarray) -> tuple:
        idx = torch.from_numpy(rows)
        return model.info_nce(model.align_image(morphology[idx], band_means[idx]), model.align_spectrum(spectrum[idx]))

    def val_loss() -> float:
        model.eval()
        batch = min(cfg.batch, len(val_rows))
        with torch.no_grad():
            parts = [float(loss_on(val_rows[i : i + batch])[0]) for i in range(0, len(val_rows) - batch + 1, batch)]
        return float(np.mean(parts))

    try:
        return run_stage("alignment", model, len(train_rows), lambda rows: loss_on(train_rows[rows]), val_loss, cfg,
                         seed=seed, progress=progress)
    finally:
        for tower in (model.image_backbone, model.spectrum_backbone):
            tower.requires_grad_(True)
