"""Arp's builtin family as four registered encoders over one weights file: three spaces.

`arp-morphology` (the self-supervised image space: shape), `arp-spectrum` (the
masked-modelling spectrum space: redshift and lines) and the aligned pair `arp-pair-image` /
`arp-pair-spectrum` (cross-modal, aligned group "arp-pair"). Weights:
embeddings/weights/arp_pair.safetensors (reproduced by `python -m embeddings train-builtin`), loaded
with safetensors only. Preprocessing: embeddings/encoders/arp_preprocess.py (version in the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embeddings.encoders import arp_preprocess as pp
from embeddings.encoders.base import Encoder, SurveyContext
from embeddings.encoders.registry import WeightsConfig, register_encoder
from embeddings.encoders.weights import file_revision

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "arp_pair.safetensors"
ALIGNED_GROUP = "arp-pair"


@dataclass(frozen=True)
class ImagePreprocessor:
    """Picklable image preprocessing (what DataLoader workers run)."""

    stats: pp.PreprocessStats

    def __call__(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return pp.image_input(row, survey, self.stats)

    def prepare_page(self, columns: dict[str, np.ndarray], survey: SurveyContext) -> list[np.ndarray | ValueError] | None:
        """A whole page of one survey at once (embeddings.data.prepare_table), or None for the per-row path."""
        return pp.image_page(columns["image"], columns["image_shape"], survey, self.stats)


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
    revision = file_revision(path, 16)
    return model, stats, revision, meta


class ArpEncoder(Encoder):
    """One space of the builtin family: morphology (image), spectrum, or a tower of the aligned pair."""

    preprocess_version = pp.PREPROCESS_VERSION

    def __init__(self, space: str, model, stats: pp.PreprocessStats, weights_revision: str) -> None:
        self.name, self.family, self.modality, method, dim, group = SPACES[space]
        self.aligned_group = group
        self.forward = getattr(model, method)
        model.eval()
        self.dim = int(getattr(model.cfg, dim))
        self.stats = stats
        self.weights_revision = weights_revision
        self._pre = ImagePreprocessor(stats) if self.modality == "image" else SpectrumPreprocessor(stats)
        self.model = model

    def preprocess(self, row: dict, survey: SurveyContext) -> np.ndarray:
        return self._pre(row, survey)

    def preprocessor(self):
        return self._pre

    def embed(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.forward(batch.to(self.device, non_blocking=True))
        return out.float().cpu().numpy()

    def to(self, device: str) -> ArpEncoder:
        self.model.to(device)
        self.device = device
        return self


# space -> (registry name, family, modality, model method, config attribute giving the width, aligned group)
SPACES = {
    "morphology": ("arp-morphology", "arp-morphology", "image", "morphology", "image_dim", ""),
    "spectrum": ("arp-spectrum", "arp-spectrum", "spectrum", "spectrum", "spectrum_dim", ""),
    "pair_image": ("arp-pair-image", ALIGNED_GROUP, "image", "pair_image", "embed_dim", ALIGNED_GROUP),
    "pair_spectrum": ("arp-pair-spectrum", ALIGNED_GROUP, "spectrum", "pair_spectrum", "embed_dim", ALIGNED_GROUP),
}
WEIGHTS_SOURCE = "embeddings/weights/arp_pair.safetensors"
DIMS = {"morphology": 256, "spectrum": 32, "pair_image": 128, "pair_spectrum": 128}  # of the committed weights
DESCRIPTIONS = {
    "morphology": "Arp's builtin image tower, self-supervised (SimCLR, astronomy-safe views): neighbours by shape.",
    "spectrum": "Arp's builtin spectrum tower, masked-spectrum modelling (DESI grid, 6.4 A bins): redshift and lines.",
    "pair_image": "Arp's builtin image tower + alignment head: the cross-modal space shared with arp-pair-spectrum.",
    "pair_spectrum": "Arp's builtin spectrum tower + alignment head: the cross-modal space shared with arp-pair-image.",
}


def _build(space: str, checkpoint: str | None, random_init: bool) -> ArpEncoder:
    if random_init:
        import torch

        from embeddings.models.arp_pair import ArpPair

        torch.manual_seed(0)
        return ArpEncoder(space, ArpPair().eval(), pp.PreprocessStats(), "random-init")
    model, stats, revision, _ = load_pair(checkpoint)
    return ArpEncoder(space, model, stats, revision)


def _register(space: str) -> None:
    name, family, modality = SPACES[space][:3]

    def factory(checkpoint: str | None = None, random_init: bool = False) -> ArpEncoder:
        return _build(space, checkpoint, random_init)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    register_encoder(family, modality=modality, name=name, description=DESCRIPTIONS[space],
                     weights=WeightsConfig(source=WEIGHTS_SOURCE, dim=DIMS[space]))(factory)


for _space in SPACES:
    _register(_space)
