"""Neighbours: same space, cross-modal, mixed, filters as prefilters, same-source removal."""

from __future__ import annotations

import numpy as np
import pytest

from backend import tags
from backend.neighbours import directions, neighbours
from backend.spaces import SpaceInfo, read_vectors, register_space, write_vectors
from backend.store import AtlasError
from tests.synthetic import IMAGE, SPECTRUM, build_synthetic


@pytest.fixture
def toy(atlas):
    objects = build_synthetic(atlas, n=400)
    return atlas, objects.set_index("object_id")


def _exact(atlas, space, query, ids_allowed=None):
    ids, mat = read_vectors(atlas, space)
    mat = mat / np.linalg.norm(mat, axis=1, keepdims=True)
    sim = mat @ (query / np.linalg.norm(query))
    order = [ids[i] for i in np.argsort(-sim) if ids_allowed is None or ids[i] in ids_allowed]
    return order


def test_same_space_neighbours_share_the_morphology(toy):
    atlas, objs = toy
    oid = "obj00007"
    out = neighbours(atlas, oid, IMAGE.name, k=10)
    assert len(out) == 10 and oid not in set(out["object_id"])
    assert (np.diff(out["similarity"]) <= 1e-6).all()
    assert (out["morphology"] == objs.loc[oid, "morphology"]).mean() >= 0.9
    assert {"ra", "dec", "redshift", "thumbnail", "distance", "similarity"} <= set(out.columns)
    _, q = read_vectors(atlas, IMAGE.name, [oid])
    assert list(out["object_id"]) == _exact(atlas, IMAGE.name, q[0])[1:11]


@pytest.mark.parametrize("src,tgt", [(IMAGE.name, SPECTRUM.name), (SPECTRUM.name, IMAGE.name)])
def test_cross_modal_finds_the_objects_own_other_modality(toy, src, tgt):
    atlas, objs = toy
    hits = 0
    for oid in objs.index[:20]:
        out = neighbours(atlas, oid, src, target_space=tgt, k=5, include_self=True)
        hits += out["object_id"].iloc[0] == oid or oid in set(out["object_id"])
    assert hits >= 15


def test_mixed_query_against_either_space(toy):
    atlas, objs = toy
    oid = "obj00003"
    for tgt in (IMAGE.name, SPECTRUM.name):
        out = neighbours(atlas, oid, [IMAGE.name, SPECTRUM.name], target_space=tgt, k=8)
        assert (out["morphology"] == objs.loc[oid, "morphology"]).mean() >= 0.9
    dirs = directions(atlas, oid)
    assert len(dirs) == 6
    assert {"image -> image", "spectrum -> spectrum", "image -> spectrum", "spectrum -> image"} <= {d.label for d in dirs}
    assert sum(d.mixed for d in dirs) == 2 and all(d.label.startswith("mixed") for d in dirs if d.mixed)


def test_filters_are_applied_before_ranking(toy):
    atlas, objs = toy
    oid = "obj00010"
    out = neighbours(atlas, oid, IMAGE.name, k=12, z_range=(0.12, 0.2), survey="desi")
    assert len(out) == 12
    assert out["redshift"].between(0.12, 0.2).all() and (out["survey"] == "desi").all()
    allowed = set(objs.index[(objs["redshift"] >= 0.12) & (objs["redshift"] <= 0.2) & (objs["survey"] == "desi")]) - {oid}
    _, q = read_vectors(atlas, IMAGE.name, [oid])
    assert list(out["object_id"]) == _exact(atlas, IMAGE.name, q[0], allowed)[:12]
    out = neighbours(atlas, oid, IMAGE.name, k=5, where="morphology = 'ring'")
    assert (out["morphology"] == "ring").all() and len(out) == 5
    tags.add_tag(atlas, ["obj00100", "obj00200"], "merger")
    out = neighbours(atlas, oid, IMAGE.name, k=5, tag="merger")
    assert set(out["object_id"]) == {"obj00100", "obj00200"}
    tags.add_tag(atlas, ["obj00300"], "merger")  # a tag added after a search joins the next one
    tags.remove_tag(atlas, ["obj00100"], "merger")
    assert set(neighbours(atlas, oid, IMAGE.name, k=5, tag="merger")["object_id"]) == {"obj00200", "obj00300"}
    with pytest.raises(AtlasError, match="bad filter"):
        neighbours(atlas, oid, IMAGE.name, where="no_such_column > 1")


def test_same_source_duplicates_are_removed(toy):
    atlas, objs = toy
    oid = "obj00020"
    row = objs.loc[oid]
    dup = row.to_frame().T.reset_index(names="object_id")
    dup["object_id"] = "obj00020-dup"
    dup["ra"] = row["ra"] + 0.5 / 3600
    dup = dup.astype({"ra": float, "dec": float, "redshift": "float32", "is_rare": bool})
    atlas.upsert("objects", dup)
    _, vec = read_vectors(atlas, IMAGE.name, [oid])
    write_vectors(atlas, IMAGE, ["obj00020-dup"], vec * 1.001)
    assert neighbours(atlas, oid, IMAGE.name, k=3)["object_id"].iloc[0] == "obj00020-dup"
    kept = neighbours(atlas, oid, IMAGE.name, k=3, exclude_same_source_arcsec=2.0)
    assert "obj00020-dup" not in set(kept["object_id"]) and len(kept) == 3


def test_unaligned_spaces_are_refused(toy):
    atlas, objs = toy
    other = SpaceInfo("other", "image", 16, "r", "v1")
    register_space(atlas, other)
    write_vectors(atlas, other, list(objs.index[:50]), np.random.default_rng(1).normal(size=(50, 16)).astype(np.float32))
    with pytest.raises(AtlasError, match="not aligned"):
        neighbours(atlas, "obj00001", IMAGE.name, target_space=other.name)


def test_broad_filters_use_the_index_path_and_stay_exact_on_small_tables(toy, monkeypatch):
    import backend.neighbours as nb

    atlas, objs = toy
    monkeypatch.setattr(nb, "EXACT_MAX", 50)  # force the oversample-and-check path
    oid = "obj00010"
    out = neighbours(atlas, oid, IMAGE.name, k=10, where="redshift > 0.1")
    allowed = set(objs.index[objs["redshift"] > 0.1]) - {oid}
    _, q = read_vectors(atlas, IMAGE.name, [oid])
    assert list(out["object_id"]) == _exact(atlas, IMAGE.name, q[0], allowed)[:10]


def test_large_objects_tables_get_filter_indexes_and_filters_stay_exact(atlas, monkeypatch):
    import backend.neighbours as nb
    from backend.index import build_index

    objs = build_synthetic(atlas, n=1200).set_index("object_id")
    build_index(atlas, IMAGE.name, flat_threshold=0)  # an IVF_PQ index even on a small table
    monkeypatch.setattr(nb, "ID_INDEX_MIN_ROWS", 0)  # scalar indexes on object_id, redshift, survey, ... as at 1M
    monkeypatch.setattr(nb, "_id_indexed", set())
    oid = "obj00010"
    out = neighbours(atlas, oid, IMAGE.name, k=10, z_range=(0.1, 0.2), survey="sdss")
    kinds = {tuple(i.columns): i.index_type for i in atlas.table("objects").list_indices()}
    assert kinds[("redshift",)] == "BTree" and kinds[("object_id",)] == "BTree" and kinds[("survey",)] == "Bitmap"
    allowed = set(objs.index[objs["redshift"].between(0.1, 0.2) & (objs["survey"] == "sdss")]) - {oid}
    assert 10 < len(allowed) <= nb.EXACT_MAX
    _, q = read_vectors(atlas, IMAGE.name, [oid])
    assert list(out["object_id"]) == _exact(atlas, IMAGE.name, q[0], allowed)[:10]


@pytest.mark.parametrize("by_scan", [False, True])
def test_an_indexed_search_whose_nearest_rows_all_fail_the_filter_still_finds_the_filtered_nearest(atlas, monkeypatch, by_scan):
    import backend.neighbours as nb
    from backend import rowmap
    from backend.index import build_index
    from backend.neighbours import search

    build_synthetic(atlas, n=1200)
    build_index(atlas, IMAGE.name, flat_threshold=0)  # IVF_PQ: candidates by PQ distance, re-ranked exactly
    monkeypatch.setattr(nb, "EXACT_MAX", 50)  # the index path, as for a broad filter at 1M
    if by_scan:  # the exact fallback as for 200k+ matching vectors at 1M: an in-order scan, in several batches
        monkeypatch.setattr(nb, "SCAN_MIN", 100)
        monkeypatch.setattr(rowmap, "SCAN_BATCH_ROWS", 256)
        monkeypatch.setattr(rowmap, "filtered_vectors", None)  # the take path must not run
    ids, mat = read_vectors(atlas, IMAGE.name)
    query = mat[10] / np.linalg.norm(mat[10])
    order = np.argsort(-(mat / np.linalg.norm(mat, axis=1, keepdims=True)) @ query)
    far = {ids[i] for i in order[600:]}  # the 600 rows farthest from the query: its index neighbours are all filtered out
    # IVF_PQ trains at random and ranks its candidates by PQ distance: judged by recall@10, not by exact order
    out = list(search(atlas, query, IMAGE.name, k=10, allowed=far)["object_id"])
    assert len(out) == 10 and set(out) <= far
    assert len(set(out) & set(_exact(atlas, IMAGE.name, query, far)[:10])) >= 8
    plain = list(search(atlas, query, IMAGE.name, k=10)["object_id"])  # unfiltered: the index itself
    assert plain[0] == ids[10] and len(set(plain) & set(_exact(atlas, IMAGE.name, query)[:10])) >= 8


def test_filtered_search_sees_objects_and_vectors_added_after_a_search(toy):
    atlas, objs = toy
    oid = "obj00030"
    neighbours(atlas, oid, IMAGE.name, k=5, z_range=(0.0, 1.0), survey="sdss")  # maps cached for these versions
    new = objs.loc[[oid]].reset_index(names="object_id").assign(object_id="obj-new", survey="sdss", redshift=0.5)
    new = new.astype({"ra": float, "dec": float, "redshift": "float32", "is_rare": bool})
    atlas.upsert("objects", new)
    _, vec = read_vectors(atlas, IMAGE.name, [oid])
    write_vectors(atlas, IMAGE, ["obj-new"], vec * 1.001)
    out = neighbours(atlas, oid, IMAGE.name, k=5, z_range=(0.0, 1.0), survey="sdss")
    assert out["object_id"].iloc[0] == "obj-new" and out["redshift"].iloc[0] == pytest.approx(0.5)
    assert "obj-new" not in set(neighbours(atlas, oid, IMAGE.name, k=5, survey="desi")["object_id"])
