"""CSLS re-ranking of cross-modal neighbours: hubs are found and demoted, and the app's search ranks by it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend import hubness
from backend.neighbours import neighbours
from backend.spaces import write_vectors
from tests.synthetic import IMAGE, SPECTRUM, build_synthetic


def _pairs_with_a_hub(n: int = 300, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Paired queries/targets (target i = query i + noise), and one extra target near the centre of all queries."""
    rng = np.random.default_rng(seed)
    queries = rng.normal(0, 1, (n, dim)) + 2.5  # a shared offset: every query leans the same way
    targets = queries + rng.normal(0, 1.3, (n, dim))
    hub = queries.mean(axis=0, keepdims=True)
    return queries, np.vstack([targets, hub])


def test_the_hub_has_the_largest_hubness_and_csls_demotes_it():
    queries, targets = _pairs_with_a_hub()
    hub = hubness.mean_top_cosine(targets, queries)
    assert hub.argmax() == len(targets) - 1, "the target near every query is the hub"
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    t = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    sims = q @ t.T
    own = np.arange(len(queries))

    def first_is_own(scores: np.ndarray) -> float:
        return float((scores.argmax(axis=1) == own).mean())

    by_csls = hubness.csls(sims, hub[None, :])
    assert (sims.argmax(axis=1) == len(targets) - 1).mean() > 0.2, "by cosine the hub comes first for many queries"
    assert (by_csls.argmax(axis=1) == len(targets) - 1).mean() < 0.1
    assert first_is_own(by_csls) > first_is_own(sims) + 0.1


def test_discovery_stores_hubness_and_cross_modal_neighbours_rank_by_csls(atlas):
    objects = build_synthetic(atlas, n=300)
    ids = objects["object_id"].tolist()
    queries, targets = _pairs_with_a_hub(n=len(ids) - 1, seed=1)  # the last object's spectrum is the hub
    write_vectors(atlas, IMAGE, ids, np.vstack([queries, queries[:1]]).astype(np.float32))
    write_vectors(atlas, SPECTRUM, ids, targets.astype(np.float32))
    plain = {oid: neighbours(atlas, oid, IMAGE.name, target_space=SPECTRUM.name, k=5) for oid in ids[:40]}
    assert all("csls" not in out.columns for out in plain.values()), "without stored hubness: cosine alone"
    assert hubness.compute_hubness(atlas, say=lambda _: None) == sorted([IMAGE.name, SPECTRUM.name])
    stored = atlas.scan(hubness.hubness_table(SPECTRUM.name), columns=["object_id", "hubness"])
    assert len(stored) == len(ids) and stored.set_index("object_id")["hubness"].idxmax() == ids[-1]
    hub_first = {"cosine": 0, "csls": 0}
    for oid in ids[:40]:
        ranked = neighbours(atlas, oid, IMAGE.name, target_space=SPECTRUM.name, k=5)
        assert (np.diff(ranked["csls"]) <= 1e-9).all(), "best CSLS first"
        hub = hubness.hubness_for(atlas, SPECTRUM.name, atlas.table(hubness.hubness_table(SPECTRUM.name)).version,
                                  ranked["object_id"].to_numpy())
        assert np.allclose(ranked["csls"], 2 * ranked["similarity"] - hub)
        hub_first["cosine"] += plain[oid]["object_id"].iloc[0] == ids[-1]
        hub_first["csls"] += ranked["object_id"].iloc[0] == ids[-1]
    assert hub_first["cosine"] >= 6 and hub_first["csls"] <= hub_first["cosine"] // 2, hub_first
    same = neighbours(atlas, ids[0], IMAGE.name, k=5)  # a same-space query is not re-ranked
    assert "csls" not in same.columns and (np.diff(same["similarity"]) <= 1e-6).all()


def test_an_id_stored_without_a_hubness_term_gets_the_median(atlas):
    build_synthetic(atlas, n=60)
    hubness.compute_hubness(atlas, say=lambda _: None)
    table = hubness.hubness_table(SPECTRUM.name)
    frame = atlas.scan(table, columns=["object_id", "hubness"])
    got = hubness.hubness_for(atlas, SPECTRUM.name, atlas.table(table).version,
                              np.array([frame["object_id"].iloc[3], "not-there"], object))
    assert got[0] == pytest.approx(frame["hubness"].iloc[3], rel=1e-6)
    assert got[1] == pytest.approx(float(pd.Series(frame["hubness"]).median()), rel=1e-6), "the median of the stored terms"
