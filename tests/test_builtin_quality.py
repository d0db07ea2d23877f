"""The committed builtin weights still reach their recorded quality on a demo built by the current code."""

from __future__ import annotations

import json

from embeddings.builtin.quality import QUALITY_FILE, SMALL_N, measure_small_demo
from embeddings.encoders.builtin import DEFAULT_WEIGHTS
from embeddings.encoders.weights import file_sha256

CARD = DEFAULT_WEIGHTS.with_name("MODEL_CARD.md")


def test_model_card_and_quality_record_describe_the_committed_weights():
    sha = file_sha256(DEFAULT_WEIGHTS)
    assert json.loads(QUALITY_FILE.read_text())["weights_sha256"] == sha
    assert sha in CARD.read_text()


def test_committed_weights_reach_recorded_quality_on_fresh_small_demo(tmp_path):
    record = json.loads(QUALITY_FILE.read_text())
    assert record["demo_n"] == SMALL_N
    got = measure_small_demo(workdir=tmp_path)
    marks = record["thresholds"]
    assert got["image_redshift_r2"] >= marks["image_redshift_r2_min"], got
    assert got["spectrum_redshift_r2"] >= marks["spectrum_redshift_r2_min"], got
    assert got["cross_modal_median_rank"] <= marks["cross_modal_median_rank_max"], got
    assert got["spectrum_space_redshift_r2"] >= marks["spectrum_space_redshift_r2_min"], got
    assert got["morphology_neighbour_agreement"] >= marks["morphology_neighbour_agreement_min"], got
