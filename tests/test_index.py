"""ANN index: flat for small spaces, IVF_PQ with refine above the threshold, recall measured against numpy."""

from __future__ import annotations

import numpy as np

from backend.index import build_index, exact_neighbours, index_plan, measure_recall, search_params
from backend.spaces import SpaceInfo, register_space, write_vectors


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 100), dim))
    return (centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def fill(atlas, vectors: np.ndarray) -> str:
    info = SpaceInfo("synthetic", "image", vectors.shape[1], "test", "v1")
    register_space(atlas, info)
    write_vectors(atlas, info, [f"o{i}" for i in range(len(vectors))], vectors)
    return info.name


def test_small_space_stays_flat_and_exact(atlas):
    space = fill(atlas, clustered(800, 32))
    info = build_index(atlas, space)
    assert info["type"] == "flat" and info["rows"] == 800
    result = measure_recall(atlas, space, n_queries=40)
    assert result["recall_at_k"] == 1.0
    assert atlas.get_meta(f"index:{space}")["recall_at_10"] == 1.0
    assert search_params(atlas, space)["type"] == "flat"


def test_large_space_gets_refined_ivf_pq_with_high_recall(atlas):
    space = fill(atlas, clustered(6000, 64))
    info = build_index(atlas, space, flat_threshold=5000)
    assert info["type"] == "IVF_PQ" and info["num_partitions"] == 77 and info["num_sub_vectors"] == 16
    tbl = atlas.table("vectors__synthetic__image")
    assert any(idx.columns == ["vector"] for idx in tbl.list_indices())
    result = measure_recall(atlas, space, n_queries=60)
    meta = atlas.get_meta(f"index:{space}")
    assert result["recall_at_k"] >= 0.9 and meta["recall_at_10"] == round(result["recall_at_k"], 4)
    assert meta["nprobes"] == 20 and meta["refine_factor"] == 20 and meta["query_p50_ms"] > 0
    # shrinking back below the threshold drops the index: queries become exact again
    assert build_index(atlas, space, flat_threshold=10_000)["type"] == "flat"
    assert not any(idx.columns == ["vector"] for idx in tbl.list_indices())


def test_parameters_scale_with_the_table():
    big = index_plan(1_000_000, 256)
    assert big["num_partitions"] == 1000 and big["num_sub_vectors"] == 64
    assert big["nprobes"] == 40 and big["refine_factor"] == 20
    assert index_plan(100_000, 128)["num_sub_vectors"] == 32
    assert index_plan(100_000, 100)["num_sub_vectors"] == 25
    assert index_plan(19_999, 128)["type"] == "flat"


def test_exact_neighbours_match_a_full_sort():
    v = clustered(500, 16, seed=3)
    q = v[:7] + 0.01
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    expected = np.argsort(-(qn @ vn.T), axis=1)[:, :5]
    np.testing.assert_array_equal(exact_neighbours(v, q, 5), expected)
