"""Train Arp's builtin family, the AstroCLIP recipe at small scale, on the train split (val split for early stopping).

Stage 1: SimCLR image pretraining on astronomy-safe views (ssl_image.py); stage 2: masked-spectrum
modelling (msm.py); stage 3: contrastive alignment heads on the frozen towers (align.py).
`python -m embeddings train-builtin --atlas DIR` (or `train(atlas_uri)`) reproduces
embeddings/weights/arp_pair.safetensors and writes the held-out test metrics and curves next to it.
Config at the top; all stages run on a 2-core CPU within about 25 minutes for the 10k demo.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from backend.store import open_atlas, where_in
from embeddings.builtin.evaluate import evaluate_pair, knn_redshift_r2
from embeddings.builtin.loop import StageConfig, recalibrate_batchnorm
from embeddings.data import iter_rows, survey_contexts
from embeddings.encoders import arp_preprocess as pp
from embeddings.encoders.base import SurveyContext

# ----------------------------------------------------------------------------- config
STAGES = {  # epoch caps and wall-time budgets: all three stages within about 25 minutes on a 2-core CPU
    "image": StageConfig(max_epochs=40, budget_s=13 * 60, patience=4, batch=128, lr=2e-3),
    "spectrum": StageConfig(max_epochs=60, budget_s=6 * 60, patience=5, batch=128, lr=2e-3),
    "align": StageConfig(max_epochs=40, budget_s=7 * 60, patience=4, batch=256, lr=1e-3, warmup_steps=20),
}
THREADS = 1  # measured faster than 2 on the shared 2-core box (no OpenMP spinning against other jobs)
BN_CALIBRATION = 2048  # training objects used to re-estimate BatchNorm statistics after each epoch
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "weights" / "arp_pair.safetensors"
COLUMNS = ["object_id", "survey", "split", "redshift", "image", "image_shape", "spectrum_flux", "spectrum_ivar"]
# -----------------------------------------------------------------------------


def load_split_arrays(atlas, splits=("train", "val", "test"), progress: bool = True) -> dict:
    """Raw 56 px g,r,z cubes and binned spectra of every usable object of the given splits."""
    from tqdm.auto import tqdm

    surveys = survey_contexts(atlas)
    where = where_in("split", splits)
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


def _centre(images):
    off = (pp.TRAIN_IMAGE_SIZE - pp.IMAGE_SIZE) // 2
    return images[:, :, off : off + pp.IMAGE_SIZE, off : off + pp.IMAGE_SIZE]


def _batched(fn, inputs, batch: int = 512) -> np.ndarray:
    """`fn` over `inputs` in batches (inference mode), concatenated as numpy."""
    import torch

    with torch.inference_mode():
        return np.concatenate([fn(inputs[i : i + batch]).numpy() for i in range(0, len(inputs), batch)])


def _standardise_buffers(mean_buf, std_buf, values: np.ndarray) -> None:
    import torch

    mean_buf.copy_(torch.from_numpy(values.mean(axis=0)))
    std_buf.copy_(torch.from_numpy(np.maximum(values.std(axis=0), 1e-4)))


def save_pair(model, stats: pp.PreprocessStats, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Write the pair as safetensors with its config, preprocessing stats and version in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(model.cfg.to_dict()), "stats": json.dumps(stats.to_dict()),
            "preprocess_version": pp.PREPROCESS_VERSION, **(extra or {})}
    save_file(state, str(path), metadata=meta)
    return Path(path)


def _pretrained_towers(model, path: Path) -> list[dict]:
    """Copy both towers from a weights file into `model`; their stage summaries (with curves) from its metrics JSON."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        for prefix in ("image_backbone.", "spectrum_backbone."):
            tower = getattr(model, prefix[:-1])
            tower.load_state_dict({k[len(prefix):]: fh.get_tensor(k) for k in fh.keys() if k.startswith(prefix)})
    metrics = path.with_suffix(".metrics.json")
    if not metrics.is_file():
        return []
    done = json.loads(metrics.read_text())
    out = []
    for stage in done.get("stages", [])[:2]:
        history = [h for h in done.get("history", []) if h["stage"] == stage["stage"]]
        out.append({**stage, "history": history, "from": str(path.name)})
    return out


def train(
    atlas_uri: str,
    *,
    out: str | Path | None = None,
    budget_scale: float = 1.0,
    seed: int = 0,
    pretrained: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Run the three stages on the atlas, save safetensors + metrics JSON, return the summary.

    `budget_scale` multiplies every stage's epoch cap and time budget (tests use a tiny fraction).
    `pretrained`: a weights file whose two towers are kept (stages 1 and 2 skipped, their curves read
    from its metrics JSON); the standardisation and the alignment heads are redone.
    """
    import torch

    from embeddings.builtin.align import align_pair
    from embeddings.builtin.msm import pretrain_spectrum
    from embeddings.builtin.ssl_image import pretrain_image
    from embeddings.models.arp_pair import ArpPair, PairConfig

    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    atlas = open_atlas(atlas_uri)
    arrays = load_split_arrays(atlas, progress=progress)
    split = arrays["split"]
    train_idx, val_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(train_idx) < 16 or len(val_idx) < 2:
        raise ValueError(f"atlas {atlas_uri} has too few usable train/val objects to train the builtin family")
    stats = fit_stats(arrays["cube"][train_idx], arrays["fbin"][train_idx], arrays["wsum"][train_idx])
    cubes = torch.from_numpy(arrays["cube"])
    images = torch.from_numpy(np.ascontiguousarray(_centre(pp.stretch_image(arrays["cube"], stats))))
    spectra = torch.from_numpy(np.stack([pp.spectrum_channels(f, w, stats)
                                         for f, w in zip(arrays["fbin"], arrays["wsum"], strict=True)]))
    load_s = time.perf_counter() - t0

    def scaled(cfg: StageConfig) -> StageConfig:
        batch = min(cfg.batch, len(train_idx), max(2, len(val_idx)))
        return replace(cfg, max_epochs=max(1, round(cfg.max_epochs * budget_scale)), budget_s=cfg.budget_s * budget_scale,
                       batch=batch)

    model = ArpPair(PairConfig())
    if pretrained:
        stages = _pretrained_towers(model, Path(pretrained))
        model.eval()  # the copied BatchNorm statistics, as after recalibration
    else:
        softening = torch.tensor(stats.image_softening, dtype=torch.float32)
        stages = [pretrain_image(model.image_backbone, cubes, softening, train_idx, val_idx, scaled(STAGES["image"]),
                                 seed=seed, progress=progress)]
        recalibrate_batchnorm(model.image_backbone, images, train_idx[:BN_CALIBRATION])
        stages.append(pretrain_spectrum(model.spectrum_backbone, spectra, train_idx, val_idx,
                                        scaled(STAGES["spectrum"]), seed=seed, progress=progress))
        recalibrate_batchnorm(model.spectrum_backbone, spectra, train_idx[:BN_CALIBRATION])
    _standardise_buffers(model.image_mean, model.image_std, _batched(model.image_backbone, images[train_idx]))
    _standardise_buffers(model.spectrum_mean, model.spectrum_std,
                         _batched(lambda x: model.spectrum_backbone.linear(x[:, 0]), spectra[train_idx]))
    morph = torch.from_numpy(_batched(model.morphology, images))
    spec = torch.from_numpy(_batched(model.spectrum, spectra))
    stages.append(align_pair(model, images, model.aperture_fluxes(images), spec, train_idx, val_idx,
                             scaled(STAGES["align"]), seed=seed, progress=progress))
    model.eval()
    train_s = time.perf_counter() - t0 - load_s

    vectors = {"morphology": morph.numpy(), "spectrum": spec.numpy(),
               "pair_image": _batched(model.pair_image, images), "pair_spectrum": _batched(model.pair_spectrum, spectra)}
    z, fit, test = arrays["z"], split == "train", split == "test"
    metrics = evaluate_pair({"train": vectors["pair_image"][fit], "test": vectors["pair_image"][test]},
                            {"train": vectors["pair_spectrum"][fit], "test": vectors["pair_spectrum"][test]},
                            {"train": z[fit], "test": z[test]})
    for space in ("morphology", "spectrum"):
        metrics[f"{space}_space_redshift_r2"] = round(knn_redshift_r2(vectors[space][fit], z[fit], vectors[space][test],
                                                                      z[test]), 4)

    out = Path(out) if out else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "atlas": str(atlas_uri),
        "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "n_test": int(test.sum()),
        "skipped_objects": int(arrays["skipped"]),
        "stages": [{k: v for k, v in s.items() if k != "history"} for s in stages],
        "load_s": round(load_s, 1), "train_s": round(train_s, 1), "seed": seed,
        "torch": torch.__version__, "test_metrics": metrics,
    }
    save_pair(model, stats, out, {"training": json.dumps({k: v for k, v in summary.items() if k != "test_metrics"})})
    summary["weights"] = str(out)
    summary["history"] = [row for s in stages for row in s["history"]]
    out.with_suffix(".metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
