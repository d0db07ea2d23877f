"""Probes on frozen vectors: kNN (AstroCLIP zero-shot protocol), linear and small-MLP predictors of any column.

A probe is trained on one space's vectors to predict one objects column (numeric -> regression,
categorical -> classification), evaluated on held-out objects, saved in the `probes` table
(safetensors bytes, no pickle) with its metrics, and its predictions written to `predictions__<probe_id>`.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
from safetensors import safe_open
from safetensors.numpy import save as st_save
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, r2_score

from backend import schema
from backend.probe_models import KNN_K, PROBES, Probe, Progress, Tensors, fit_ridge, make_probe
from backend.spaces import read_vectors
from backend.store import Atlas, AtlasError, utcnow

METHODS = tuple(PROBES)
REDSHIFT_OUTLIER_DZ = 0.15
__all__ = ["KNN_K", "METHODS", "PROBES", "Probe", "fit_ridge", "list_probes", "load_estimator", "load_probe",
           "predict", "predictions", "probe_metrics", "run_probe_job", "train_probe"]


@dataclass
class ProbeData:
    """Vectors, targets and the train/test split of one probe."""

    ids: np.ndarray
    X: np.ndarray
    y: np.ndarray
    train: np.ndarray  # boolean mask
    task: str  # regression | classification
    classes: list[str] | None


def _task_for(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "classification"
    if pd.api.types.is_integer_dtype(values) and values.nunique() <= 20:
        return "classification"
    return "regression"


def load_probe_data(
    atlas: Atlas, space: str, target: str, *, split: str | float = "split", task: str | None = None, seed: int = 0
) -> ProbeData:
    """Join a space's vectors with a target column; split by the atlas's split column or a random test fraction."""
    available = set(atlas.columns(schema.OBJECTS))
    if target not in available:
        raise AtlasError(f"objects have no column {target!r}; label columns: {', '.join(atlas.label_columns())}")
    if isinstance(split, str) and split not in available:
        raise AtlasError(f"objects have no split column {split!r}; pass a test fraction instead")
    objects = atlas.objects(list(dict.fromkeys(["object_id", target] + ([split] if isinstance(split, str) else []))))
    ids, X = read_vectors(atlas, space)
    frame = pd.DataFrame({"object_id": ids, "_row": np.arange(len(ids))}).merge(objects, on="object_id")
    frame = frame[frame[target].notna()]
    if len(frame) < 10:
        raise AtlasError(f"only {len(frame)} objects in space {space} have a value for {target!r}; need at least 10")
    task = task or _task_for(frame[target])
    if isinstance(split, str):
        train = (frame[split] != "test").to_numpy()
        if train.all() or not train.any():
            raise AtlasError(f"split column {split!r} has no train/test separation; pass a test fraction (e.g. 0.2)")
    else:
        if not 0.0 < float(split) < 1.0:
            raise AtlasError(f"test fraction must be in (0, 1), got {split}")
        train = np.random.default_rng(seed).random(len(frame)) >= float(split)
    classes = None
    y = frame[target].to_numpy()
    if task == "classification":
        y = y.astype(str)
        classes = sorted(set(y[train]))
    else:
        y = y.astype(np.float64)
    return ProbeData(frame["object_id"].to_numpy(), X[frame["_row"].to_numpy()], y, train, task, classes)


# ------------------------------------------------------------------ metrics
def probe_metrics(y_true: np.ndarray, y_pred: np.ndarray, task: str, target: str = "", classes: list[str] | None = None) -> dict:
    """R^2, MAE (and redshift outlier fraction) for regression; accuracy, macro F1, confusion matrix for classes."""
    if task == "regression":
        out = {"r2": float(r2_score(y_true, y_pred)), "mae": float(mean_absolute_error(y_true, y_pred)), "n_test": len(y_true)}
        if "redshift" in target.lower() or target.lower() in ("z", "zspec", "z_spec", "photoz"):
            dz = np.abs(y_pred - y_true) / (1.0 + y_true)
            out["outlier_fraction"] = float(np.mean(dz > REDSHIFT_OUTLIER_DZ))
            out["nmad"] = float(1.4826 * np.median(np.abs(dz - np.median(dz))))
        return out
    labels = classes or sorted(set(y_true) | set(y_pred))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "labels": list(labels),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "n_test": len(y_true),
    }


# ------------------------------------------------------------------ train / save / predict
def _probe_id(method: str, target: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:40] or "target"
    return f"{method}-{slug}-{uuid.uuid4().hex[:6]}"


def train_probe(
    atlas: Atlas,
    space: str,
    target: str,
    method: str = "linear",
    *,
    split: str | float = "split",
    task: str | None = None,
    k: int = KNN_K,
    hidden: int = 256,
    epochs: int = 30,
    seed: int = 0,
    probe_id: str | None = None,
    progress: Progress | None = None,
) -> dict:
    """Train, evaluate on held-out objects, save a probe and its predictions; returns {probe_id, metrics, ...}."""
    if method not in PROBES:
        raise AtlasError(f"unknown probe method {method!r}; choose one of {', '.join(METHODS)}")
    report = progress or (lambda f, m: None)
    report(0.02, f"loading vectors of {space} and column {target}")
    data = load_probe_data(atlas, space, target, split=split, task=task, seed=seed)
    tr = data.train
    report(0.1, f"fitting {method} probe on {tr.sum()} objects")
    estimator = make_probe(method, data.task, k=k, hidden=hidden, epochs=epochs, seed=seed,
                           progress=lambda f, m: report(0.3 + 0.6 * f, m))
    pred, unc = estimator.fit(data.X[tr], data.y[tr]).predict_with_uncertainty(data.X)
    report(0.92, "evaluating on held-out objects")
    te = ~tr
    metrics = probe_metrics(data.y[te], pred[te], data.task, target, data.classes)
    metrics["n_train"] = int(tr.sum())
    probe_id = probe_id or _probe_id(method, target)
    tensors, meta = estimator.to_tensors()
    meta.update(target=target, space=space)
    if estimator.needs_training_rows:
        meta["train_ids"] = list(map(str, data.ids[tr]))
    _save(atlas, probe_id, meta, tensors, metrics)
    regression = data.task == "regression"
    table = pd.DataFrame(
        {
            "object_id": data.ids.astype(str),
            "prediction": pred.astype(np.float64) if regression else pred.astype(str),
            "uncertainty": np.asarray(unc, dtype=np.float64),
            "truth": data.y if regression else data.y.astype(str),
            "split": np.where(tr, "train", "test"),
        }
    )
    atlas.replace(schema.predictions_table(probe_id), table)
    report(1.0, f"probe {probe_id}: " + ", ".join(f"{k_}={v:.3f}" for k_, v in metrics.items() if isinstance(v, float)))
    return {"probe_id": probe_id, "space": space, "target": target, "method": method, "task": data.task, "metrics": metrics}


def _save(atlas: Atlas, probe_id: str, meta: dict, tensors: Tensors, metrics: dict) -> None:
    blob = st_save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata={"arp_probe": json.dumps(meta)})
    row = {
        "probe_id": probe_id,
        "space": meta["space"],
        "target": meta["target"],
        "method": meta["method"],
        "task": meta["task"],
        "metrics": json.dumps(metrics),
        "model": blob,
        "created_at": utcnow(),
    }
    atlas.upsert(schema.PROBES, [row], key="probe_id", create_schema=schema.PROBES_SCHEMA)


def list_probes(atlas: Atlas) -> pd.DataFrame:
    """Saved probes (without model bytes), newest first, metrics decoded."""
    cols = ["probe_id", "space", "target", "method", "task", "metrics", "created_at"]
    if atlas.count(schema.PROBES) == 0:
        return pd.DataFrame(columns=cols)
    frame = atlas.scan(schema.PROBES, cols)
    frame["metrics"] = frame["metrics"].map(json.loads)
    return frame.sort_values("created_at", ascending=False).reset_index(drop=True)


def predictions(atlas: Atlas, probe_id: str) -> pd.DataFrame:
    """A probe's predictions: object_id, prediction, uncertainty, truth, split."""
    return atlas.scan(schema.predictions_table(probe_id))


def load_probe(atlas: Atlas, probe_id: str) -> tuple[dict, Tensors]:
    """A saved probe's metadata and tensors (safetensors; no code is unpickled)."""
    row = atlas.get_row(schema.PROBES, probe_id, key="probe_id")
    if row is None:
        raise AtlasError(f"no probe {probe_id!r} in {atlas.uri}")
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as handle:  # safetensors reads metadata from files only
        handle.write(row["model"])
        handle.flush()
        with safe_open(handle.name, framework="numpy") as model:
            meta = json.loads((model.metadata() or {})["arp_probe"])
            return meta, {name: model.get_tensor(name) for name in model.keys()}  # noqa: SIM118 - not a dict


def load_estimator(atlas: Atlas, probe_id: str) -> tuple[Probe, dict]:
    """A saved probe as a fitted estimator (a kNN probe re-indexes its training rows), with its metadata."""
    meta, tensors = load_probe(atlas, probe_id)
    estimator = Probe.from_tensors(tensors, meta)
    if estimator.needs_training_rows:
        train_ids, X_train = read_vectors(atlas, meta["space"], meta["train_ids"])
        y_train = atlas.get_objects(train_ids, [meta["target"]])[meta["target"]].to_numpy()
        estimator.set_training_rows(X_train, y_train)
    return estimator, meta


def predict(atlas: Atlas, probe_id: str, object_ids: list[str] | None = None) -> pd.DataFrame:
    """Apply a saved probe to (some) objects of its space: object_id, prediction, uncertainty."""
    estimator, meta = load_estimator(atlas, probe_id)
    ids, X = read_vectors(atlas, meta["space"], object_ids)
    pred, unc = estimator.predict_with_uncertainty(X)
    return pd.DataFrame({"object_id": ids, "prediction": pred, "uncertainty": unc})


def run_probe_job(atlas: Atlas, params: dict, ctx) -> dict:  # noqa: ANN001 - ctx is a backend.jobs.JobContext
    """Job entry (`kind="probe"`): params space, target, method, split, [task, k, hidden, epochs, seed]."""

    def progress(fraction: float, message: str) -> None:
        ctx.check_cancelled()
        ctx.progress(fraction, message)

    keys = ("split", "task", "k", "hidden", "epochs", "seed", "probe_id")
    kwargs = {k: params[k] for k in keys if params.get(k) is not None}
    return train_probe(atlas, params["space"], params["target"], params.get("method", "linear"), progress=progress, **kwargs)
