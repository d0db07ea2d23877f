"""The encoder interface: name, modality, dimension, versioned preprocessing, embed."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from backend.spaces import SpaceInfo


@dataclass(frozen=True)
class SurveyContext:
    """What preprocessing needs to know about the survey a row comes from."""

    bands: tuple[str, ...] = ()
    pixel_scale: float | None = None  # arcsec / pixel
    wavelength: np.ndarray | None = field(default=None, compare=False)  # Angstrom, the survey grid


class Encoder(ABC):
    """A pretrained (or builtin) model that turns one modality of an object into a vector.

    `preprocess` is pure numpy/CPU and runs inside DataLoader workers; `embed` runs the model on
    a batch of preprocessed tensors on `self.device`.
    """

    name: str  # registry name (or a variant of it), also the `<encoder>` part of the vectors table
    family: str = ""  # registry family (stamped by `register_encoder`)
    modality: str  # "image" | "spectrum" | "text"
    dim: int
    weights_revision: str  # hub revision, file sha256 prefix, or "random-init"
    preprocess_version: str  # bump whenever preprocessing changes
    aligned_group: str = ""  # encoders sharing a non-empty group embed into one aligned space
    device: str = "cpu"

    @abstractmethod
    def preprocess(self, row: dict, survey: SurveyContext) -> np.ndarray:
        """Turn one atlas row (its `image` cube bands x H x W or `spectrum_flux`/`ivar`) into model input.

        Raises ValueError with a user-facing reason when the row cannot be used.
        """

    @abstractmethod
    def embed(self, batch) -> np.ndarray:  # torch.Tensor in, float32 (N, dim) out
        """Embed a batch of preprocessed inputs (stacked `preprocess` outputs as a torch tensor)."""

    def input_columns(self) -> list[str]:
        """Atlas `objects` columns `preprocess` reads (the embedding job fetches only these)."""
        if self.modality == "image":
            return ["image", "image_shape"]
        if self.modality == "spectrum":
            return ["spectrum_flux", "spectrum_ivar"]
        return []

    def preprocessor(self) -> Callable[[dict, SurveyContext], np.ndarray]:
        """A picklable callable equivalent to `preprocess`, shipped to DataLoader worker processes.

        Override it when pickling the encoder itself would copy large weights.
        """
        return self.preprocess

    def space_info(self) -> SpaceInfo:
        """The space this encoder's vectors go to, with their provenance."""
        from backend.spaces import SpaceInfo  # here, so encoders import without LanceDB

        return SpaceInfo(self.name, self.modality, int(self.dim), self.weights_revision, self.preprocess_version,
                         self.aligned_group)

    def to(self, device: str) -> Encoder:
        """Move the model to a device ("cpu", "cuda", "cuda:1")."""
        self.device = device
        return self
