"""Train Arp's builtin pair: symmetric InfoNCE on the train split, early stopping on the val split.

`python -m embeddings train-builtin --atlas DIR` (or `train(atlas_uri)`) reproduces
embeddings/weights/arp_pair.safetensors and writes the held-out test metrics next to it.
Config at the top; everything runs on CPU within about a quarter of an hour for the 10k demo.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from backend.store import open_atlas
from embeddings.builtin import preprocess as pp
from embeddings.builtin.evaluate import evaluate_pair
from embeddings.data import iter_rows, survey_contexts
from embeddings.encoders.base import SurveyContext

# ----------------------------------------------------------------------------- config
MAX_EPOCHS = 40
PATIENCE = 6  # epochs without val-loss improvement before stopping
TIME_BUDGET_S = 13 * 60  # stop training (keep the best epoch) past this wall time
BATCH_SIZE = 256
LR = 2e-3
WEIGHT_DECAY = 0.05
WARMUP_STEPS = 60
THREADS = 2
BN_CALIBRATION = 2048  # training objects used to re-estimate BatchNorm statistics after each epoch
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "weights" / "arp_pair.safetensors"
COLUMNS = ["object_id", "survey", "split", "redshift", "image", "image_shape", "spectrum_flux", "spectrum_ivar"]
# -----------------------------------------------------------------------------


def load_split_arrays(atlas, splits=("train", "val", "test"), progress: bool = True) -> dict:
    """Raw 56 px g,r,z cubes and binned spectra of every usable object of the given splits."""
    from tqdm.auto import tqdm

    surveys = survey_contexts(atlas)
    where = "split IN (" + ", ".join(f"'{s}'" for s in splits) + ")"
    total = atlas.count("objects", where)
    data = {"ids": [], "split": [], "z": [], "cube": [], "fbin": [], "wsum": []}
    skipped = 0
    for row in tqdm(iter_rows(atlas, COLUMNS, where=where), total=total, desc="loading", disable=not progress):
        ctx = surveys.get(row["survey"] or "", SurveyContext())
        try:
            cube = pp.raw_image(row, ctx, pp.TRAIN_IMAGE_SIZE)
            fbin, wsum = pp.binned_spectrum(row, ctx)
            pp.spectrum_amplitude(fbin, wsum)
        except ValueError:
            skipped += 1
            continue
        data["ids"].append(row["object_id"])
        data["split"].append(row["split"])
        data["z"].append(float(row["redshift"]))
        data["cube"].append(cube)
        data["fbin"].append(fbin)
        data["wsum"].append(wsum)
    out = {k: np.asarray(v) for k, v in data.items() if k not in ("cube", "fbin", "wsum")}
    out["cube"] = np.stack(data["cube"]).astype(np.float32)
    out["fbin"], out["wsum"] = np.stack(data["fbin"]), np.stack(data["wsum"])
    out["skipped"] = skipped
    return out


def fit_stats(cube: np.ndarray, fbin: np.ndarray, wsum: np.ndarray) -> pp.PreprocessStats:
    """Per-band image softening (median per-object robust noise) and log-amplitude mean/std, from train rows."""
    flat = cube.reshape(len(cube), cube.shape[1], -1)
    mad = np.median(np.abs(flat - np.median(flat, axis=2, keepdims=True)), axis=2) * 1.4826
    soft = np.maximum(np.median(mad, axis=0), 1e-6)
    amps = np.log10([pp.spectrum_amplitude(f, w) for f, w in zip(fbin, wsum, strict=True)])
    return pp.PreprocessStats(tuple(float(s) for s in soft), float(amps.mean()), float(max(amps.std(), 1e-3)))


def model_inputs(arrays: dict, stats: pp.PreprocessStats) -> tuple[np.ndarray, np.ndarray]:
    """Stretched 56 px images and 3-channel spectra for every loaded object."""
    images = pp.stretch_image(arrays["cube"], stats)  # broadcasts over (N, 3, H, W)
    spectra = np.stack([pp.spectrum_channels(f, w, stats) for f, w in zip(arrays["fbin"], arrays["wsum"], strict=True)])
    return np.ascontiguousarray(images), spectra


def _centre(images):
    off = (pp.TRAIN_IMAGE_SIZE - pp.IMAGE_SIZE) // 2
    return images[:, :, off : off + pp.IMAGE_SIZE, off : off + pp.IMAGE_SIZE]


def embed_arrays(model, images, spectra, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Image and spectrum vectors (eval mode, centre crop) for in-memory tensors."""
    import torch

    model.eval()
    zi, zs = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            zi.append(model.image(_centre(images[i : i + batch])).numpy())
            zs.append(model.spectrum(spectra[i : i + batch]).numpy())
    return np.concatenate(zi), np.concatenate(zs)


def recalibrate_batchnorm(model, images, spectra, idx: np.ndarray, batch: int = 256) -> None:
    """Re-estimate BatchNorm statistics as exact averages over un-augmented training objects.

    The running averages kept during augmented training gave an eval-mode loss far above the
    train-mode loss; exact statistics on centre crops close that gap.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            part = torch.from_numpy(idx[i : i + batch])
            model.image(_centre(images[part]))
            model.spectrum(spectra[part])
    for m in norms:
        m.momentum = 0.1
    model.eval()


def _val_loss(model, images, spectra, batch: int) -> float:
    import torch

    model.eval()
    losses = []
    with torch.inference_mode():
        for i in range(0, len(images) - batch + 1, batch):
            loss, _ = model.loss(_centre(images[i : i + batch]), spectra[i : i + batch])
            losses.append(float(loss))
    return float(np.mean(losses))


def save_pair(model, stats: pp.PreprocessStats, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write the pair as safetensors with its config, preprocessing stats and version in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(model.cfg.to_dict()), "stats": json.dumps(stats.to_dict()),
            "preprocess_version": pp.PREPROCESS_VERSION, **(extra or {})}
    save_file(state, str(path), metadata=meta)
    return Path(path)


def train(
    atlas_uri: str,
    *,
    out: str | Path | None = None,
    max_epochs: int | None = None,
    batch_size: int = BATCH_SIZE,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train the pair on the atlas, save safetensors + metrics JSON, return the summary."""
    import torch

    from embeddings.models.arp_pair import ArpPair, PairConfig

    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    atlas = open_atlas(atlas_uri)
    arrays = load_split_arrays(atlas, progress=progress)
    split = arrays["split"]
    if (split == "train").sum() < batch_size or (split == "val").sum() < 2:
        raise ValueError(f"atlas {atlas_uri} has too few usable train/val objects to train the builtin pair")
    tr = split == "train"
    stats = fit_stats(arrays["cube"][tr], arrays["fbin"][tr], arrays["wsum"][tr])
    images, spectra = (torch.from_numpy(a) for a in model_inputs(arrays, stats))
    load_s = time.perf_counter() - t0

    cfg = PairConfig()
    model = ArpPair(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    train_idx = np.flatnonzero(tr)
    val_idx = np.flatnonzero(split == "val")
    steps_per_epoch = len(train_idx) // batch_size
    epochs = max_epochs or MAX_EPOCHS
    total_steps = steps_per_epoch * epochs

    def lr_at(step: int, elapsed: float) -> float:
        """Linear warm-up, then cosine decay over the step budget or the time budget, whichever ends first."""
        if step < WARMUP_STEPS:
            return LR * (step + 1) / WARMUP_STEPS
        frac = max((step - WARMUP_STEPS) / max(1, total_steps - WARMUP_STEPS), elapsed / TIME_BUDGET_S)
        return LR * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    val_batch = min(batch_size, len(val_idx))
    best = {"val_loss": float("inf"), "epoch": -1, "state": None}
    history = []
    step = 0
    train_start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
        losses, accs = [], []
        for b in range(steps_per_epoch):
            idx = torch.from_numpy(order[b * batch_size : (b + 1) * batch_size])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, time.perf_counter() - train_start)
            loss, acc = model.loss(pp.augment_images(images[idx], gen), spectra[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            accs.append(acc.item())
            step += 1
        recalibrate_batchnorm(model, images, spectra, train_idx[:BN_CALIBRATION])
        val = _val_loss(model, images[val_idx], spectra[val_idx], val_batch)
        elapsed = time.perf_counter() - train_start
        history.append({"epoch": epoch, "train_loss": round(np.mean(losses), 4), "train_top1": round(np.mean(accs), 4),
                        "val_loss": round(val, 4), "temperature": round(float(1 / model.logit_scale.detach().exp()), 4),
                        "elapsed_s": round(elapsed, 1)})
        if progress:
            print(json.dumps(history[-1]), flush=True)
        if val < best["val_loss"]:
            best = {"val_loss": val, "epoch": epoch, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if epoch - best["epoch"] >= PATIENCE or elapsed > TIME_BUDGET_S:
            break
    train_s = time.perf_counter() - train_start
    model.load_state_dict(best["state"])

    zi, zs = embed_arrays(model, images, spectra)
    z = arrays["z"]
    fit = split == "train"
    test = split == "test"
    metrics = evaluate_pair({"train": zi[fit], "test": zi[test]}, {"train": zs[fit], "test": zs[test]},
                            {"train": z[fit], "test": z[test]})

    out = Path(out) if out else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "atlas": str(atlas_uri),
        "n_train": int(tr.sum()), "n_val": int(len(val_idx)), "n_test": int(test.sum()),
        "skipped_objects": int(arrays["skipped"]),
        "best_epoch": best["epoch"], "epochs_run": len(history), "best_val_loss": round(best["val_loss"], 4),
        "load_s": round(load_s, 1), "train_s": round(train_s, 1), "seed": seed,
        "torch": torch.__version__, "test_metrics": metrics,
    }
    save_pair(model, stats, out, {"training": json.dumps({k: v for k, v in summary.items() if k != "test_metrics"})})
    summary["weights"] = str(out)
    summary["history"] = history
    out.with_suffix(".metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
