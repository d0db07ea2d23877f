"""One training stage: AdamW, warm-up + cosine learning rate, early stopping on a validation loss, wall-time budget.

Each stage of train-builtin (image SSL, masked spectra, alignment) hands `run_stage` a loss on a
batch of training rows and a validation loss; the best epoch's weights are kept.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StageConfig:
    """Optimisation settings of one stage."""

    max_epochs: int
    budget_s: float  # stop (keeping the best epoch) past this wall time
    patience: int = 4  # epochs without a relative val improvement of `min_delta` before stopping (plateau)
    min_delta: float = 0.003
    batch: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 40


def run_stage(
    name: str,
    module,
    n_train: int,
    batch_loss: Callable[[np.ndarray], tuple],
    val_loss: Callable[[], float],
    cfg: StageConfig,
    *,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train `module`'s trainable parameters; `batch_loss(rows)` -> (loss, *extras); restores the best epoch."""
    import torch

    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(seed)
    steps_per_epoch = max(1, n_train // cfg.batch)
    total = steps_per_epoch * cfg.max_epochs

    def lr_at(step: int, elapsed: float) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        frac = max((step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps), elapsed / cfg.budget_s)
        return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    best = {"val_loss": float("inf"), "epoch": -1, "state": None}
    history: list[dict] = []
    step, start = 0, time.perf_counter()
    for epoch in range(cfg.max_epochs):
        module.train()
        order = rng.permutation(n_train)
        losses = []
        for b in range(steps_per_epoch):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, time.perf_counter() - start)
            loss = batch_loss(order[b * cfg.batch : (b + 1) * cfg.batch])[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
        val = float(val_loss())
        elapsed = time.perf_counter() - start
        history.append({"stage": name, "epoch": epoch, "train_loss": round(float(np.mean(losses)), 4),
                        "val_loss": round(val, 4), "elapsed_s": round(elapsed, 1)})
        if progress:
            print(json.dumps(history[-1]), flush=True)
        if val < best["val_loss"] - cfg.min_delta * abs(best["val_loss"]) or best["state"] is None:
            best = {"val_loss": val, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}
        if epoch - best["epoch"] >= cfg.patience or elapsed > cfg.budget_s:
            break
    module.load_state_dict(best["state"])
    module.eval()
    return {"stage": name, "best_epoch": best["epoch"], "epochs_run": len(history),
            "best_val_loss": round(best["val_loss"], 4), "seconds": round(time.perf_counter() - start, 1),
            "history": history}


def recalibrate_batchnorm(module, inputs, rows: np.ndarray, batch: int = 256) -> None:
    """Re-estimate a module's BatchNorm statistics as exact averages over un-augmented training objects.

    Training sees random views / masked spectra; exact statistics on the inputs the encoders will
    embed (centre crops, whole spectra) close the gap between train-mode and eval-mode outputs.
    """
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    module.train()
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            module(inputs[torch.from_numpy(rows[i : i + batch])])
    for m in norms:
        m.momentum = 0.1
    module.eval()
