"""Common shell of the pretrained encoders: a torch module in eval mode, batched inference, device moves."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from embeddings.encoders.base import Encoder, SurveyContext
from embeddings.encoders.weights import file_revision


class TorchEncoder(Encoder):
    """An Encoder around `self.model`; subclasses define `preprocess` and `forward(tensor) -> (N, dim)`."""

    model: torch.nn.Module

    def preprocess(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return self.preprocessor()(row, survey)

    def preprocessor(self) -> Callable[[dict, SurveyContext], np.ndarray]:
        """A small picklable function (module-level function + settings): workers never receive the weights."""
        raise NotImplementedError

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def embed(self, batch) -> np.ndarray:
        x = torch.as_tensor(np.asarray(batch) if not isinstance(batch, torch.Tensor) else batch)
        x = x.to(self.device, dtype=torch.float32, non_blocking=True)
        with torch.inference_mode():
            out = self.forward(x)
        return out.float().cpu().numpy().astype(np.float32, copy=False)

    def to(self, device: str) -> TorchEncoder:
        self.model.to(device)
        return super().to(device)


@functools.lru_cache(maxsize=32)
def _cached_revision(path: str, size: int, mtime: float) -> str:
    return file_revision(path)


def weights_revision(path: str | os.PathLike) -> str:
    """sha256 prefix of a weights file, memoised per (path, size, mtime)."""
    st = Path(path).stat()
    return _cached_revision(str(Path(path).resolve()), st.st_size, st.st_mtime)
