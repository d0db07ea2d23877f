"""Probe estimators shaped like scikit-learn's: `fit(X, y) -> self`, `predict(X)`, `to_tensors()/from_tensors()`.

Each method (kNN, linear, MLP) is one class in `PROBES`. Every estimator standardises its inputs with the mean
and spread of the training rows, and saves as plain tensors plus a JSON-able dict (safetensors, no pickle).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

Tensors = dict[str, np.ndarray]
Progress = Callable[[float, str], None]
KNN_K = 64


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a (rows, classes) array."""
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


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


class Probe:
    """Base estimator: standardise X, then fit or apply the method on the scaled rows.

    `task` is "regression" (float targets) or "classification" (labels, compared as strings).
    """

    method: ClassVar[str]
    needs_training_rows: ClassVar[bool] = False  # kNN keeps no weights: reloading it needs the training rows again

    def __init__(self, task: str) -> None:
        if task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
        self.task = task
        self.classes_: list[str] = []
        self.mean_ = np.zeros(0, np.float32)
        self.scale_ = np.ones(0, np.float32)

    # ---------------------------------------------------------------- the estimator API
    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Fit on rows X (n, d) and targets y (n,)."""
        y = self._targets(y)
        if self.task == "classification":
            self.classes_ = sorted(set(y))
        self.mean_ = X.mean(axis=0).astype(np.float32)
        self.scale_ = X.std(axis=0).astype(np.float32)
        self.scale_[self.scale_ < 1e-8] = 1.0
        self._fit(self._scaled(X), y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted values (regression) or labels (classification) of rows X."""
        return self.predict_with_uncertainty(X)[0]

    def predict_with_uncertainty(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and their uncertainty: 1 - top class probability, or a spread (NaN when none)."""
        return self._predict(self._scaled(X))

    def to_tensors(self) -> tuple[Tensors, dict[str, Any]]:
        """The fitted state as named float arrays and a JSON-able dict (method, task, classes, parameters)."""
        tensors = {"scaler.mean": self.mean_, "scaler.scale": self.scale_, **self._tensors()}
        return tensors, {"method": self.method, "task": self.task, "classes": self.classes_ or None, **self._params()}

    @classmethod
    def from_tensors(cls, tensors: Tensors, meta: dict[str, Any]) -> Probe:
        """The estimator saved by `to_tensors` (of whichever class `meta["method"]` names)."""
        probe_cls = PROBES[meta["method"]]
        probe = probe_cls(meta["task"])
        probe.classes_ = list(meta.get("classes") or [])
        probe.mean_, probe.scale_ = tensors["scaler.mean"], tensors["scaler.scale"]
        probe._load(tensors, meta)
        return probe

    def set_training_rows(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Give a reloaded memory-based estimator (kNN) its training rows back; the others keep weights only."""
        return self

    # ---------------------------------------------------------------- for the methods
    def _targets(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y).astype(str) if self.task == "classification" else np.asarray(y, dtype=np.float64)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32)

    def _labels(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.classes_)[proba.argmax(1)], 1.0 - proba.max(1)

    def _fit(self, Xs: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _tensors(self) -> Tensors:
        return {}

    def _params(self) -> dict[str, Any]:
        return {}

    def _load(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        """Restore the method's own state from `to_tensors` output."""


class KnnProbe(Probe):
    """k nearest neighbours, distance-weighted (the AstroCLIP zero-shot protocol); the spread is the uncertainty."""

    method = "knn"
    needs_training_rows = True

    def __init__(self, task: str, k: int = KNN_K) -> None:
        super().__init__(task)
        self.k = k
        self.model_: Any = None
        self.y_train_ = np.zeros(0)

    def set_training_rows(self, X: np.ndarray, y: np.ndarray) -> Self:
        """Index the training rows again (with the saved standardisation) after `from_tensors`."""
        self._fit(self._scaled(X), self._targets(y))
        return self

    def _fit(self, Xs: np.ndarray, y: np.ndarray) -> None:
        self.k = min(self.k, len(Xs))
        regression = self.task == "regression"
        model = KNeighborsRegressor(self.k, weights="distance") if regression else KNeighborsClassifier(self.k, weights="distance")
        self.model_, self.y_train_ = model.fit(Xs, y), y

    def _predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.model_ is None:
            raise ValueError("this kNN probe has no training rows: call set_training_rows(X, y) after from_tensors")
        if self.task == "classification":
            return self._labels(self.model_.predict_proba(Xs))
        dist, idx = self.model_.kneighbors(Xs)
        w = 1.0 / np.maximum(dist, 1e-12)
        w /= w.sum(1, keepdims=True)
        vals = self.y_train_[idx]
        mean = (w * vals).sum(1)
        return mean, np.sqrt((w * (vals - mean[:, None]) ** 2).sum(1))

    def _params(self) -> dict[str, Any]:
        return {"k": int(self.k)}

    def _load(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        self.k = int(meta["k"])


class LinearProbe(Probe):
    """Ridge regression (penalty chosen on a validation slice) or logistic regression; one linear map predicts."""

    method = "linear"

    def __init__(self, task: str, seed: int = 0) -> None:
        super().__init__(task)
        self.seed = seed
        self.coef_ = np.zeros((0, 0), np.float32)
        self.intercept_ = np.zeros(0, np.float32)
        self.alpha_: float | None = None

    def _fit(self, Xs: np.ndarray, y: np.ndarray) -> None:
        if self.task == "regression":
            coef, intercept, self.alpha_ = fit_ridge(Xs, y, seed=self.seed)
            self.coef_, self.intercept_ = coef[None].astype(np.float32), np.array([intercept], np.float32)
            return
        model = LogisticRegression(C=1.0, max_iter=300).fit(Xs, y)
        self.coef_, self.intercept_ = model.coef_.astype(np.float32), model.intercept_.astype(np.float32)

    def _predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits = Xs @ self.coef_.T + self.intercept_
        if self.task == "regression":
            return logits[:, 0], np.full(len(Xs), np.nan)
        if logits.shape[1] == 1:  # binary: scikit-learn keeps the second class's logit only
            logits = np.hstack([np.zeros_like(logits), logits])
        return self._labels(softmax(logits))

    def _tensors(self) -> Tensors:
        return {"coef": self.coef_, "intercept": self.intercept_}

    def _params(self) -> dict[str, Any]:
        return {} if self.alpha_ is None else {"alpha": self.alpha_}

    def _load(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        self.coef_, self.intercept_, self.alpha_ = tensors["coef"], tensors["intercept"], meta.get("alpha")


class MlpProbe(Probe):
    """A two-hidden-layer GELU network trained with AdamW (targets standardised for regression)."""

    method = "mlp"

    def __init__(self, task: str, hidden: int = 256, epochs: int = 30, seed: int = 0, progress: Progress | None = None) -> None:
        super().__init__(task)
        self.hidden, self.epochs, self.seed, self.progress = hidden, epochs, seed, progress
        self.state_: Tensors = {}
        self.y_mu_, self.y_sd_ = 0.0, 1.0

    def _net(self, dim_in: int, dim_out: int) -> Any:
        import torch

        h = self.hidden
        return torch.nn.Sequential(
            torch.nn.Linear(dim_in, h), torch.nn.GELU(), torch.nn.Linear(h, h), torch.nn.GELU(), torch.nn.Linear(h, dim_out)
        )

    def _fit(self, Xs: np.ndarray, y: np.ndarray) -> None:
        import torch

        regression = self.task == "regression"
        torch.manual_seed(self.seed)
        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
        net = self._net(Xs.shape[1], 1 if regression else len(self.classes_))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
        X_t = torch.from_numpy(Xs)
        if regression:
            self.y_mu_, self.y_sd_ = float(y.mean()), float(y.std() or 1.0)
            y_t = torch.from_numpy(((y - self.y_mu_) / self.y_sd_).astype(np.float32))
        else:
            y_t = torch.from_numpy(np.searchsorted(np.asarray(self.classes_), y).astype(np.int64))
        loss_fn = torch.nn.MSELoss() if regression else torch.nn.CrossEntropyLoss()
        gen = torch.Generator().manual_seed(self.seed)
        for epoch in range(self.epochs):
            net.train()
            for batch in torch.randperm(len(X_t), generator=gen).split(256):
                out = net(X_t[batch])
                loss = loss_fn(out.squeeze(-1) if regression else out, y_t[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if self.progress:
                self.progress((epoch + 1) / self.epochs, f"MLP epoch {epoch + 1}/{self.epochs}, loss {loss.item():.4f}")
        self.state_ = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}

    def _predict(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        net = self._net(Xs.shape[1], self.state_["4.weight"].shape[0])
        net.load_state_dict({k: torch.from_numpy(v) for k, v in self.state_.items()})
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(b) for b in torch.from_numpy(Xs).split(8192)]).numpy()
        if self.task == "regression":
            return out[:, 0] * self.y_sd_ + self.y_mu_, np.full(len(out), np.nan)
        return self._labels(softmax(out))

    def _tensors(self) -> Tensors:
        return {f"mlp.{k}": v for k, v in self.state_.items()}

    def _params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "y_mu": self.y_mu_, "y_sd": self.y_sd_}

    def _load(self, tensors: Tensors, meta: dict[str, Any]) -> None:
        self.state_ = {k.removeprefix("mlp."): v for k, v in tensors.items() if k.startswith("mlp.")}
        self.hidden, self.y_mu_, self.y_sd_ = int(meta["hidden"]), float(meta["y_mu"]), float(meta["y_sd"])


PROBES: dict[str, type[Probe]] = {cls.method: cls for cls in (KnnProbe, LinearProbe, MlpProbe)}


def make_probe(method: str, task: str, **options: Any) -> Probe:
    """A new estimator of `method` for `task`, given the options its class takes (others are ignored)."""
    cls = PROBES[method]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(task, **{k: v for k, v in options.items() if k in accepted and k != "task"})
