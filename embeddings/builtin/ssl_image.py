"""Stage 1: self-supervised image pretraining (SimCLR: NT-Xent between two astronomy-safe views, lightly's loss and head)."""

from __future__ import annotations

import numpy as np

from embeddings.builtin.loop import StageConfig, run_stage
from embeddings.builtin.views import ViewConfig, random_views

TEMPERATURE = 0.2
PROJECTION_DIM = 128


def pretrain_image(backbone, cubes, softening, train_rows: np.ndarray, val_rows: np.ndarray, cfg: StageConfig,
                   *, views: ViewConfig = ViewConfig(), seed: int = 0, progress: bool = True) -> dict:
    """SimCLR on `backbone` (linear-flux cubes (N, 3, 56, 56), per-band softening); returns the stage summary."""
    import torch
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead

    with torch.no_grad():
        width = backbone(random_views(cubes[:2], softening)).shape[1]
    head = SimCLRProjectionHead(width, width, PROJECTION_DIM)
    model = torch.nn.ModuleDict({"backbone": backbone, "head": head})
    criterion = NTXentLoss(temperature=TEMPERATURE)
    gen = torch.Generator().manual_seed(seed)

    def loss_on(rows: np.ndarray, generator: torch.Generator) -> tuple:
        batch = cubes[torch.from_numpy(rows)]
        a = head(backbone(random_views(batch, softening, generator, views)))
        b = head(backbone(random_views(batch, softening, generator, views)))
        return (criterion(a, b),)

    def val_loss() -> float:
        fixed = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():  # train-mode BatchNorm (batch statistics), as in training
            parts = [float(loss_on(val_rows[i : i + cfg.batch], fixed)[0])
                     for i in range(0, len(val_rows) - cfg.batch + 1, cfg.batch)]
        return float(np.mean(parts))

    return run_stage("image-simclr", model, len(train_rows), lambda rows: loss_on(train_rows[rows], gen), val_loss,
                     cfg, seed=seed, progress=progress)
