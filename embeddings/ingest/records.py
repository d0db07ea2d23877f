"""What format readers hand to the writer: one object's data, or one skipped row/file with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Spectrum:
    """A spectrum as read: `wave` None means the reader's native grid (SourceInfo.wavelength)."""

    flux: np.ndarray
    ivar: np.ndarray | None = None
    wave: np.ndarray | None = None


@dataclass
class Record:
    """One object from a source, before validation, cross-matching and resampling."""

    object_id: str
    where: str
    ra: float | None = None
    dec: float | None = None
    redshift: float | None = None
    image: np.ndarray | None = None
    bands: list[str] | None = None
    spectrum: Spectrum | None = None
    thumbnail: bytes | None = None
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skip:
    """A row or file the reader could not use."""

    where: str
    reason: str
    detail: str = ""


@dataclass
class SourceInfo:
    """What a reader knows about its source: default survey name and survey metadata."""

    kind: str
    survey: str
    total: int | None = None
    bands: list[str] | None = None
    pixel_scale: float | None = None
    wavelength: np.ndarray | None = None
    description: str = ""
    notes: dict[str, dict] = field(default_factory=dict)  # column -> reason, detail, rows (values the source lacks)
