"""Arp's builtin contrastive pair as two registered encoders sharing the aligned group "arp-pair".

Weights: embeddings/weights/arp_pair.safetensors (reproduced by `python -m embeddings train-builtin`),
loaded with safetensors only. Preprocessing: embeddings/builtin/preprocess.py (version in the file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.builtin import preprocess as pp
from embeddings.encoders.base import Encoder, SurveyContext
from embeddings.encoders.registry import WeightsConfig, register_encoder

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "arp_pair.safetensors"
ALIGNED_GROUP = "arp-pair"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ImagePreprocessor:
    """Picklable image preprocessing (what DataLoader workers run)."""

    stats: pp.PreprocessStats

    def __call__(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return pp.image_input(row, survey, self.stats)


@dataclass(frozen=True)
class SpectrumPreprocessor:
    """Picklable spectrum preprocessing (what DataLoader workers run)."""

    stats: pp.PreprocessStats

    def __call__(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return pp.spectrum_input(row, survey, self.stats)


def load_pair(path: str | Path | None = None):
    """Load the pair (both towers) from a safetensors file: (model, stats, weights_revision, metadata)."""
    from safetensors import safe_open

    from embeddings.models.arp_pair import ArpPair, PairConfig

    path = Path(path) if path else DEFAULT_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"builtin weights {path} not found: reproduce them with `python -m embeddings train-builtin --atlas DIR`"
        )
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        state = {k: fh.get_tensor(k) for k in fh.keys()}
    if meta.get("preprocess_version") != pp.PREPROCESS_VERSION:
        raise ValueError(
            f"{path} was trained with preprocessing {meta.get('preprocess_version')!r}, this code runs "
            f"{pp.PREPROCESS_VERSION!r}: retrain with `python -m embeddings train-builtin`"
        )
    model = ArpPair(PairConfig.from_dict(json.loads(meta["config"])))
    model.load_state_dict(state, strict=True)
    model.eval()
    stats = pp.PreprocessStats.from_dict(json.loads(meta["stats"]))
    revision = "sha256:" + file_sha256(path)[:16]
    return model, stats, revision, meta


class ArpPairEncoder(Encoder):
    """One tower of the builtin pair (image or spectrum) into the shared 128-d L2-normalised space."""

    aligned_group = ALIGNED_GROUP
    preprocess_version = pp.PREPROCESS_VERSION

    family = ALIGNED_GROUP

    def __init__(self, modality: str, model, stats: pp.PreprocessStats, weights_revision: str) -> None:
        self.name = f"{self.family}-{modality}"
        self.modality = modality
        self.tower = model.image if modality == "image" else model.spectrum
        self.tower.eval()
        self.dim = int(model.cfg.embed_dim)
        self.stats = stats
        self.weights_revision = weights_revision
        self._pre = ImagePreprocessor(stats) if modality == "image" else SpectrumPreprocessor(stats)

    def preprocess(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return self._pre(row, survey)

    def preprocessor(self):
        return self._pre

    def embed(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.tower(batch.to(self.device, non_blocking=True))
        return out.float().cpu().numpy()

    def to(self, device: str) -> ArpPairEncoder:
        self.tower.to(device)
        self.device = device
        return self


def _build(modality: str, checkpoint: str | None, random_init: bool) -> ArpPairEncoder:
    if random_init:
        import torch

        from embeddings.models.arp_pair import ArpPair

        torch.manual_seed(0)
        return ArpPairEncoder(modality, ArpPair().eval(), pp.PreprocessStats(), "random-init")
    model, stats, revision, _ = load_pair(checkpoint)
    return ArpPairEncoder(modality, model, stats, revision)


PAIR_WEIGHTS = WeightsConfig(source="embeddings/weights/arp_pair.safetensors", dim=128)


@register_encoder(
    "arp-pair",
    modality="image",
    weights=PAIR_WEIGHTS,
    description="Arp's builtin image CNN (g,r,z 48 px), contrastively aligned with arp-pair-spectrum.",
)
def arp_pair_image(checkpoint: str | None = None, random_init: bool = False) -> ArpPairEncoder:
    """Builtin image tower (weights shipped in the repo)."""
    return _build("image", checkpoint, random_init)


@register_encoder(
    "arp-pair",
    modality="spectrum",
    weights=PAIR_WEIGHTS,
    description="Arp's builtin 1-D conv spectrum encoder (DESI grid, 6.4 A bins), aligned with arp-pair-image.",
)
def arp_pair_spectrum(checkpoint: str | None = None, random_init: bool = False) -> ArpPairEncoder:
    """Builtin spectrum tower (weights shipped in the repo)."""
    return _build("spectrum", checkpoint, random_init)
