"""The regression guard of the committed weights: quality on a small demo built by the current code.

`measure_small_demo()` builds an n=600 demo atlas, embeds it with the committed builtin family (all
three spaces) through the real embedding job and evaluates it (embeddings/builtin/evaluate.py): the
aligned pair's redshift R^2 and cross-modal rank, the spectrum space's redshift R^2 and how often
the morphology space's 10 nearest neighbours share an object's morphology label. `python -m
embeddings.builtin.quality` records the measured figures and thresholds (measured, with a margin) in
embeddings/weights/arp_pair.quality.json, which tests/test_builtin_quality.py checks against.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from embeddings.builtin.evaluate import evaluate_atlas, neighbour_label_agreement, space_redshift_r2
from embeddings.encoders.builtin import DEFAULT_WEIGHTS
from embeddings.encoders.weights import file_sha256
from embeddings.pipeline import BUILTIN_ENCODERS

QUALITY_FILE = DEFAULT_WEIGHTS.with_name("arp_pair.quality.json")
SMALL_N = 600
SEED = 0
MARGIN_R2 = 0.05  # thresholds: measured R^2 minus this; median rank times RANK_FACTOR (+1)
RANK_FACTOR = 1.5


def measure_small_demo(n: int = SMALL_N, seed: int = SEED, workdir: str | Path | None = None) -> dict:
    """Build an n-object demo, embed it with the committed pair (job path), return the evaluation."""
    from embeddings.demo.build import build_demo
    from embeddings.job import run_embedding

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        atlas = build_demo(str(Path(tmp) / "demo"), n=n, seed=seed, workers=1, progress=False)
        for name in BUILTIN_ENCODERS:
            run_embedding(atlas, name, device="cpu", workers=0, progress=False, index=False)
        out = evaluate_atlas(atlas, "arp-pair-image__image", "arp-pair-spectrum__spectrum")
        out["spectrum_space_redshift_r2"] = round(space_redshift_r2(atlas, "arp-spectrum__spectrum"), 4)
        out["morphology_neighbour_agreement"] = round(
            neighbour_label_agreement(atlas, "arp-morphology__image", "morphology"), 4)
        return out


def thresholds_from(measured: dict) -> dict:
    """Pass marks for the small-demo figures: the measured values with a margin."""
    return {
        "image_redshift_r2_min": round(measured["image_redshift_r2"] - MARGIN_R2, 3),
        "spectrum_redshift_r2_min": round(measured["spectrum_redshift_r2"] - MARGIN_R2, 3),
        "cross_modal_median_rank_max": round(measured["cross_modal_median_rank"] * RANK_FACTOR + 1, 1),
        "spectrum_space_redshift_r2_min": round(measured["spectrum_space_redshift_r2"] - MARGIN_R2, 3),
        "morphology_neighbour_agreement_min": round(measured["morphology_neighbour_agreement"] - MARGIN_R2, 3),
    }


def record() -> dict:
    """Measure and write QUALITY_FILE."""
    measured = measure_small_demo()
    out = {"demo_n": SMALL_N, "seed": SEED, "weights_sha256": file_sha256(DEFAULT_WEIGHTS),
           "measured": measured, "thresholds": thresholds_from(measured)}
    QUALITY_FILE.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    print(json.dumps(record(), indent=1))
