"""From objects to a ready atlas: builtin vectors, morphology and spectral-index columns, the shape space, UMAP maps,
anomaly scores and rare clusters."""

from __future__ import annotations

from collections.abc import Callable

from backend.discovery import discover
from backend.shape_space import build_shape_space
from backend.store import Atlas, open_atlas

BUILTIN_ENCODERS = ("arp-morphology", "arp-spectrum", "arp-pair-image", "arp-pair-spectrum")
IMAGE_ENCODERS = ("arp-morphology", "arp-pair-image")  # atlases without spectra (the Hubble Deep Field)


def prepare_atlas(
    atlas: Atlas | str,
    *,
    encoders: tuple[str, ...] = BUILTIN_ENCODERS,
    workers: int | None = None,
    progress: bool = True,
    random_init: bool = False,
    say: Callable[[str], None] = print,
) -> Atlas:
    """Embed objects with the encoders (resumable), measure morphology and spectral indices, then compute maps,
    anomalies and clusters.

    `random_init=True` uses untrained builtin weights (tests of the plumbing when no weights file exists).
    """
    from embeddings.encoders.registry import get_encoder
    from embeddings.job import run_embedding

    atlas = atlas if isinstance(atlas, Atlas) else open_atlas(atlas)
    for name in encoders:
        encoder = get_encoder(name, random_init=True) if random_init else None
        summary = run_embedding(atlas, name, encoder=encoder, device="cpu", workers=workers, progress=progress)
        say(f"embed {name}: {summary.embedded} new vectors, {summary.skipped} skipped")
    measure_catalogue(atlas, progress=progress, say=say)
    build_shape_space(atlas, say=say)
    discover(atlas, say=say)
    return atlas


def measure_catalogue(atlas: Atlas, *, progress: bool = True, say: Callable[[str], None] = print) -> None:
    """Store the morphology parameters of every cutout (`morph_*`) and the spectral indices of every spectrum (`line_*`)."""
    from embeddings import morphology, spectral_indices

    measured = morphology.write_catalogue(atlas, progress=progress, say=say)
    if len(measured):
        say(f"morphology: {int(measured['morph_gini'].notna().sum())} of {len(measured)} objects measured")
    lines = spectral_indices.write_catalogue(atlas, progress=progress, say=say)
    if len(lines):
        say(f"spectral indices: {int(lines['line_d4000n'].notna().sum())} of {len(lines)} spectra measured")
