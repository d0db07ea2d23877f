"""Default weights of the pretrained encoders (hub repo, file, Arp's folder), importable without torch.

The encoder modules build their registry entries and resolve their weights from these records, and
`check_default_weights` uses the same records to fail a job on missing weights before torch, timm or
open_clip is imported and before any download is tried offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from embeddings.encoders.weights import (
    ResolvedWeights,
    WeightsNotFoundError,
    fetch_hint,
    local_weights,
    resolve_weights,
    weights_on_disk,
)


@dataclass(frozen=True)
class HubWeights:
    """A checkpoint on the Hugging Face hub: `repo`, its `files` (first preferred) and Arp's `folder` for it."""

    folder: str  # the family argument of resolve_weights: $ARP_WEIGHTS_DIR/<folder>/<file>
    repo: str
    files: tuple[str, ...]

    @property
    def file(self) -> str:
        """The preferred file."""
        return self.files[0]

    @property
    def source(self) -> str:
        """`hf://<repo>/<file>`, as recorded in the encoder registry."""
        return f"hf://{self.repo}/{self.file}"

    def resolve(self, checkpoint: str | os.PathLike | None = None) -> ResolvedWeights:
        """The file on disk (see `resolve_weights`); an alternative file is tried when the preferred one is missing."""
        try:
            return resolve_weights(self.folder, self.repo, self.file, checkpoint)
        except WeightsNotFoundError as first:
            for other in self.files[1:]:
                try:
                    return resolve_weights(self.folder, self.repo, other, checkpoint)
                except WeightsNotFoundError:
                    continue
            raise first from None

    def check(self) -> None:
        """Raise WeightsNotFoundError when no file of this checkpoint is on disk and none can be downloaded."""
        if any(weights_on_disk(self.folder, self.repo, name) for name in self.files):
            return
        local_weights(self.folder, self.repo, self.file)  # raises when offline or the hub cannot be reached


def zoobot_weights(variant: str = "convnext_nano") -> HubWeights:
    """Zoobot's timm encoder `variant` on the hub."""
    return HubWeights(f"zoobot-{variant}", f"mwalmsley/zoobot-encoder-{variant}", ("model.safetensors",))


ASTROCLIP = HubWeights("astroclip", "polymathic-ai/astroclip", ("astroclip.ckpt",))
ASTRODINO = HubWeights("astrodino", "polymathic-ai/astrodino", ("astrodino.ckpt",))
SPECFORMER = HubWeights("specformer", "polymathic-ai/specformer", ("specformer.ckpt",))
ASTROPT_REPO, ASTROPT_SIZE = "Smith42/astroPT_v2.0", "095M"
ASTROPT = HubWeights("astropt", ASTROPT_REPO, (f"astropt/{ASTROPT_SIZE}/ckpt.pt",))
OPENCLIP = HubWeights("openclip-vit-b-32-laion2b-s34b-b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                      ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))

# Registry name -> the weights its factory loads when called without arguments.
DEFAULT_WEIGHTS: dict[str, HubWeights] = {
    "zoobot": zoobot_weights(),
    "astroclip-image": ASTROCLIP,
    "astroclip-spectrum": ASTROCLIP,
    "astrodino-image": ASTRODINO,
    "specformer-spectrum": SPECFORMER,
    "astropt": ASTROPT,
    "openclip-image": OPENCLIP,
}


# Registry name -> modality of the pretrained encoders, so that forms can list them without importing torch
# (tests/test_encoders_weights.py checks it against the registry).
PRETRAINED_MODALITIES: dict[str, str] = {
    "zoobot": "image",
    "astroclip-image": "image",
    "astroclip-spectrum": "spectrum",
    "astrodino-image": "image",
    "specformer-spectrum": "spectrum",
    "astropt": "image",
    "openclip-image": "image",
}


def default_weights_for(name: str, modality: str | None = None) -> HubWeights | None:
    """The hub weights encoder `name` (or family `name` + `modality`) loads by default; None for other encoders."""
    if name in DEFAULT_WEIGHTS:
        return DEFAULT_WEIGHTS[name]
    if modality:
        return DEFAULT_WEIGHTS.get(f"{name}-{modality}")
    family = {w for key, w in DEFAULT_WEIGHTS.items() if key.startswith(f"{name}-")}
    return family.pop() if len(family) == 1 else None


def check_default_weights(name: str, modality: str | None = None, checkpoint: str | os.PathLike | None = None) -> None:
    """Raise WeightsNotFoundError (naming the file and how to provide it) when encoder `name` cannot find its weights.

    Cheap: no torch import and no download (a missing file is left to the job when the hub can be reached).
    Encoders without hub weights (the builtin family) pass.
    """
    weights = default_weights_for(name, modality)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.exists():
            hint = fetch_hint(weights.folder, weights.repo, weights.file) if weights else "give the path of a weights file"
            raise WeightsNotFoundError(f"checkpoint {path} does not exist; {hint}")
        return
    if weights is not None:
        weights.check()
