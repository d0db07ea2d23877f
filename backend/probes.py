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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from safetensors import safe_open
from safetensors.numpy import save as st_save
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, mean_absolute_error, r2_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from backend import schema
from backend.spaces import read_vectors
from backend.store import Atlas, AtlasError, utcnow

METHODS = ("knn", "linear", "mlp")
KNN_K = 64
REDSHIFT_OUTLIER_DZ = 0.15
Progress = Callable[[float, str], None]


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
    available = set(atlas.table(schema.OBJECTS).schema.names)
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


# ------------------------------------------------------------------ models
class _Scaler:
    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(axis=0).astype(np.float32)
        self.scale = X.std(axis=0).astype(np.float32)
        self.scale[self.scale < 1e-8] = 1.0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)


def _fit_knn(Xs: np.ndarray, y: np.ndarray, task: str, k: int) -> Any:
    k = min(k, len(Xs))
    model = KNeighborsRegressor(k, weights="distance") if task == "regression" else KNeighborsClassifier(k, weights="distance")
    return model.fit(Xs, y)


def _knn_predict(model: Any, Xs: np.ndarray, y_train: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    if task == "classification":
        proba = model.predict_proba(Xs)
        return model.classes_[proba.argmax(1)], 1.0 - proba.max(1)
    dist, idx = model.kneighbors(Xs)
    w = 1.0 / np.maximum(dist, 1e-12)
    w /= w.sum(1, keepdims=True)
    vals = y_train[idx]
    mean = (w * vals).sum(1)
    std = np.sqrt((w * (vals - mean[:, None]) ** 2).sum(1))
    return mean, std


def _mlp(dim_in: int, dim_out: int, hidden: int):  # noqa: ANN202 - torch imported lazily
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(dim_in, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim_out)
    )


def _fit_mlp(
    Xs: np.ndarray, y: np.ndarray, n_out: int, task: str, *, hidden: int, epochs: int, seed: int, progress: Progress
) -> tuple[dict, dict]:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    net = _mlp(Xs.shape[1], n_out, hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    X_t = torch.from_numpy(Xs)
    y_mu, y_sd = (float(y.mean()), float(y.std() or 1.0)) if task == "regression" else (0.0, 1.0)
    y_t = torch.from_numpy(((y - y_mu) / y_sd).astype(np.float32)) if task == "regression" else torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.MSELoss() if task == "regression" else torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        for batch in torch.randperm(len(X_t), generator=gen).split(256):
            out = net(X_t[batch])
            loss = loss_fn(out.squeeze(-1) if task == "regression" else out, y_t[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        progress(0.3 + 0.6 * (epoch + 1) / epochs, f"MLP epoch {epoch + 1}/{epochs}, loss {loss.item():.4f}")
    state = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    return state, {"hidden": hidden, "y_mu": y_mu, "y_sd": y_sd}


def _mlp_predict(state: dict, meta: dict, Xs: np.ndarray, task: str, classes: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    import torch

    n_out = state["4.weight"].shape[0]
    net = _mlp(Xs.shape[1], n_out, int(meta["hidden"]))
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(b) for b in torch.from_numpy(Xs).split(8192)]).numpy()
    if task == "regression":
        return out[:, 0] * meta["y_sd"] + meta["y_mu"], np.full(len(out), np.nan)
    proba = np.exp(out - out.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    return np.asarray(classes)[proba.argmax(1)], 1.0 - proba.max(1)


def fit_ridge(X: np.ndarray, y: np.ndarray, alphas: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Ridge regression with the penalty chosen on a 10% validation slice.

    One pass over the data builds the Gram matrices of the fit and validation rows; one eigendecomposition
    then serves every alpha, and the final fit on all rows reuses the summed Gram matrices.
    """
    alphas = np.logspace(-2, 5, 15) if alphas is None else alphas
    val = np.random.default_rng(seed).random(len(X)) < 0.1
    X32 = np.ascontiguousarray(X, dtype=np.float32)

    def gram(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
        part = X32[rows]
        return (part.T @ part).astype(np.float64), part.sum(0, dtype=np.float64), part.T.astype(np.float64) @ y[rows], float(y[rows].sum()), int(rows.sum())

    def solve(S: np.ndarray, sx: np.ndarray, sxy: np.ndarray, sy: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        mu, y0 = sx / n, sy / n
        evals, evecs = np.linalg.eigh(S - n * np.outer(mu, mu))
        return evals, evecs, evecs.T @ (sxy - n * mu * y0), mu, y0

    fit_g, val_g = gram(~val), gram(val)
    best = float(alphas[len(alphas) // 2])
    if val_g[4] >= 5 and fit_g[4] > 5:
        evals, evecs, proj, mu, y0 = solve(*fit_g)
        Xv = X32[val].astype(np.float64) - mu
        errors = [np.mean((Xv @ (evecs @ (proj / (evals + a))) + y0 - y[val]) ** 2) for a in alphas]
        best = float(alphas[int(np.argmin(errors))])
    evals, evecs, proj, mu, y0 = solve(fit_g[0] + val_g[0], fit_g[1] + val_g[1], fit_g[2] + val_g[2],
                                       fit_g[3] + val_g[3], fit_g[4] + val_g[4])
    coef = evecs @ (proj / (evals + best))
    return coef, float(y0 - mu @ coef), best


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
    if method not in METHODS:
        raise AtlasError(f"unknown probe method {method!r}; choose one of {', '.join(METHODS)}")
    progress = progress or (lambda f, m: None)
    progress(0.02, f"loading vectors of {space} and column {target}")
    data = load_probe_data(atlas, space, target, split=split, task=task, seed=seed)
    tr = data.train
    scaler = _Scaler(data.X[tr])
    Xs = scaler(data.X)
    tensors: dict[str, np.ndarray] = {"scaler.mean": scaler.mean, "scaler.scale": scaler.scale}
    meta: dict = {"method": method, "task": data.task, "target": target, "space": space, "classes": data.classes}
    progress(0.1, f"fitting {method} probe on {tr.sum()} objects")
    y_fit = data.y
    if data.task == "classification":
        classes = data.classes or []
        known = np.isin(data.y, classes)
        y_fit = np.where(known, data.y, classes[0])
    if method == "knn":
        model = _fit_knn(Xs[tr], y_fit[tr], data.task, k)
        pred, unc = _knn_predict(model, Xs, y_fit[tr], data.task)
        meta.update(k=int(model.n_neighbors), train_ids=list(map(str, data.ids[tr])))
    elif method == "linear":
        if data.task == "regression":
            coef, intercept, alpha = fit_ridge(Xs[tr], y_fit[tr].astype(np.float64), seed=seed)
            pred, unc = Xs @ coef + intercept, np.full(len(Xs), np.nan)
            tensors.update(coef=coef[None].astype(np.float32), intercept=np.array([intercept], np.float32))
            meta["alpha"] = alpha
        else:
            model = LogisticRegression(C=1.0, max_iter=300).fit(Xs[tr], y_fit[tr])
            proba = model.predict_proba(Xs)
            pred, unc = model.classes_[proba.argmax(1)], 1.0 - proba.max(1)
            meta["classes"] = [str(c) for c in model.classes_]
            tensors.update(coef=model.coef_.astype(np.float32), intercept=model.intercept_.astype(np.float32))
    else:
        if data.task == "classification":
            y_idx = np.searchsorted(np.asarray(data.classes or []), y_fit)
            n_out = len(data.classes or [])
        else:
            y_idx, n_out = y_fit, 1
        state, mlp_meta = _fit_mlp(Xs[tr], y_idx[tr], n_out, data.task, hidden=hidden, epochs=epochs, seed=seed, progress=progress)
        tensors.update({f"mlp.{k_}": v for k_, v in state.items()})
        meta.update(mlp_meta)
        pred, unc = _mlp_predict(state, mlp_meta, Xs, data.task, data.classes)
    progress(0.92, "evaluating on held-out objects")
    te = ~tr
    metrics = probe_metrics(data.y[te], pred[te], data.task, target, data.classes)
    metrics["n_train"] = int(tr.sum())
    probe_id = probe_id or _probe_id(method, target)
    _save(atlas, probe_id, meta, tensors, metrics)
    table = pd.DataFrame(
        {
            "object_id": data.ids.astype(str),
            "prediction": pred if data.task == "regression" else pred.astype(str),
            "uncertainty": np.asarray(unc, dtype=np.float64),
            "truth": data.y if data.task == "regression" else data.y.astype(str),
            "split": np.where(tr, "train", "test"),
        }
    )
    atlas.replace(schema.predictions_table(probe_id), table)
    progress(1.0, f"probe {probe_id}: " + ", ".join(f"{k_}={v:.3f}" for k_, v in metrics.items() if isinstance(v, float)))
    return {"probe_id": probe_id, "space": space, "target": target, "method": method, "task": data.task, "metrics": metrics}


def _save(atlas: Atlas, probe_id: str, meta: dict, tensors: dict[str, np.ndarray], metrics: dict) -> None:
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


def load_probe(atlas: Atlas, probe_id: str) -> tuple[dict, dict[str, np.ndarray]]:
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


def predict(atlas: Atlas, probe_id: str, object_ids: list[str] | None = None) -> pd.DataFrame:
    """Apply a saved probe to (some) objects of its space: object_id, prediction, uncertainty."""
    meta, tensors = load_probe(atlas, probe_id)
    ids, X = read_vectors(atlas, meta["space"], object_ids)
    Xs = ((X - tensors["scaler.mean"]) / tensors["scaler.scale"]).astype(np.float32)
    task, classes = meta["task"], meta.get("classes")
    if meta["method"] == "linear":
        logits = Xs @ tensors["coef"].T + tensors["intercept"]
        if task == "regression":
            pred, unc = logits[:, 0], np.full(len(Xs), np.nan)
        elif logits.shape[1] == 1:  # binary logistic regression
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            pred, unc = np.asarray(classes)[(p1 > 0.5).astype(int)], 1.0 - np.maximum(p1, 1 - p1)
        else:
            proba = np.exp(logits - logits.max(1, keepdims=True))
            proba /= proba.sum(1, keepdims=True)
            pred, unc = np.asarray(classes)[proba.argmax(1)], 1.0 - proba.max(1)
    elif meta["method"] == "mlp":
        state = {k.removeprefix("mlp."): v for k, v in tensors.items() if k.startswith("mlp.")}
        pred, unc = _mlp_predict(state, meta, Xs, task, classes)
    else:
        train_ids, X_train = read_vectors(atlas, meta["space"], meta["train_ids"])
        y_train = atlas.get_objects(train_ids, [meta["target"]])[meta["target"]].to_numpy()
        y_train = y_train.astype(str) if task == "classification" else y_train.astype(np.float64)
        model = _fit_knn(((X_train - tensors["scaler.mean"]) / tensors["scaler.scale"]).astype(np.float32), y_train, task, meta["k"])
        pred, unc = _knn_predict(model, Xs, y_train, task)
    return pd.DataFrame({"object_id": ids, "prediction": pred, "uncertainty": unc})


def run_probe_job(atlas: Atlas, params: dict, ctx) -> dict:  # noqa: ANN001 - ctx is a backend.jobs.JobContext
    """Job entry (`kind="probe"`): params space, target, method, split, [task, k, hidden, epochs, seed]."""

    def progress(fraction: float, message: str) -> None:
        ctx.check_cancelled()
        ctx.progress(fraction, message)

    keys = ("split", "task", "k", "hidden", "epochs", "seed", "probe_id")
    kwargs = {k: params[k] for k in keys if params.get(k) is not None}
    return train_probe(atlas, params["space"], params["target"], params.get("method", "linear"), progress=progress, **kwargs)
