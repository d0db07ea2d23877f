"""Tags are an append-only history: removals are rows, exports carry ra/dec, concurrent writers lose nothing."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from backend import tags
from backend.spaces import write_vectors
from backend.store import AtlasError, open_atlas
from tests.synthetic import IMAGE, build_synthetic


@pytest.fixture
def toy(atlas):
    build_synthetic(atlas, n=100)
    return atlas


def test_add_remove_fold_keeps_history(toy):
    tags.add_tag(toy, ["obj00001", "obj00002"], "ring", note="clear ring", author="ada")
    tags.add_tag(toy, "obj00001", "merger", author="ada")
    tags.remove_tag(toy, "obj00002", "ring", author="bob")
    tags.add_tag(toy, "obj00003", "lens")
    cur = tags.current_tags(toy)
    assert set(zip(cur["object_id"], cur["tag"], strict=True)) == {("obj00001", "ring"), ("obj00001", "merger"), ("obj00003", "lens")}
    assert tags.tags_of(toy, "obj00001") == ["merger", "ring"]
    assert tags.tags_of(toy, "obj00002") == []
    hist = tags.history(toy, "obj00002")
    assert list(hist["action"]) == ["add", "remove"] and list(hist["author"]) == ["ada", "bob"]
    tags.add_tag(toy, "obj00002", "ring")  # re-adding after a removal works
    assert sorted(tags.tagged_ids(toy, "ring")) == ["obj00001", "obj00002"]
    with pytest.raises(AtlasError, match="non-empty"):
        tags.add_tag(toy, "obj00001", "  ")
    assert tags.tagged_object_count(toy) == 3 and toy.count("tags") == 6  # objects, not rows


def test_tag_names_are_checked_and_a_bulk_tag_adds_only_the_missing_ones(toy):
    rows = toy.count("tags")
    for bad, reason in [("x" * 65, "at most 64 characters"), ("ring\nmerger", "control characters"),
                        ("ring\u200b", "control characters"), ("\t ", "non-empty")]:
        with pytest.raises(AtlasError, match=reason):
            tags.add_tag(toy, "obj00001", bad)
    assert toy.count("tags") == rows, "a refused name writes nothing"
    assert tags.tag_name("  tidal stream  ") == "tidal stream" and tags.tag_name("x" * 64) == "x" * 64
    tags.add_tag(toy, "obj00002", "merger")
    added = tags.tag_objects(toy, ["obj00001", "obj00002", "obj00003", "obj00001"], " merger ")
    assert added == ["obj00001", "obj00003"], "the one already tagged and the repeat are left alone"
    assert sorted(tags.tagged_ids(toy, "merger")) == ["obj00001", "obj00002", "obj00003"]
    assert tags.tag_objects(toy, ["obj00001"], "merger") == [] and toy.count("tags") == rows + 3


@pytest.mark.parametrize("suffix", [".csv", ".fits", ".vot"])
def test_export_round_trips_with_coordinates(toy, tmp_path, suffix):
    tags.add_tag(toy, ["obj00010", "obj00011", "obj00012"], "ring", note="ring-like")
    tags.add_tag(toy, "obj00013", "lens")
    path = tags.export_tagged(toy, tmp_path / f"rings{suffix}", tag="ring")
    back = Table.read(path, format={".csv": "ascii.csv", ".fits": "fits", ".vot": "votable"}[suffix])
    assert sorted(back["object_id"]) == ["obj00010", "obj00011", "obj00012"]
    objs = toy.get_objects(["obj00010"], ["ra", "dec"])
    row = back[list(back["object_id"]).index("obj00010")]
    assert row["ra"] == pytest.approx(objs["ra"][0]) and row["dec"] == pytest.approx(objs["dec"][0])
    if suffix != ".csv":
        assert str(back["ra"].unit) == "deg"
    with pytest.raises(AtlasError, match="choose a .csv"):
        tags.export_tagged(toy, tmp_path / "x.docx")


def test_tags_written_during_a_bulk_write_all_land(toy):
    """Two writers (a thread and a separate connection) tag while a bulk objects+vectors upsert runs."""
    n_bulk = 6000
    rng = np.random.default_rng(0)
    ids = [f"bulk{i:05d}" for i in range(n_bulk)]
    bulk = pd.DataFrame({"object_id": ids, "survey": "sdss", "ra": rng.uniform(0, 10, n_bulk), "dec": rng.uniform(0, 10, n_bulk)})
    errors: list[Exception] = []

    def tagger(prefix: str) -> None:
        try:
            other = open_atlas(toy.uri)  # its own connection, as another app session would have
            for i in range(25):
                tags.add_tag(other, f"obj{i:05d}", f"{prefix}-{i}")
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=tagger, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    started = pd.Timestamp.now(tz="UTC")
    toy.upsert("objects", bulk, batch_rows=500)
    write_vectors(toy, IMAGE, ids, rng.normal(size=(n_bulk, IMAGE.dim)).astype(np.float32))
    finished = pd.Timestamp.now(tz="UTC")
    for t in threads:
        t.join()
    assert not errors
    cur = tags.current_tags(toy)
    assert len(cur) == 50
    assert cur["created_at"].between(started, finished).any()  # the writes really overlapped
    assert toy.count("objects") == 100 + n_bulk


def test_sources_are_one_row_per_file_not_per_object():
    from backend.catalogue import sources

    cat = pd.DataFrame({"object_id": ["a", "b", "c", "d"], "survey": ["demo", "demo", "demo", "hdf"],
                        "source": ["kcorrect:x.fits#1", "kcorrect:x.fits#2", "kcorrect:x.fits#3", None],
                        "redshift": [0.1, 0.2, 0.3, float("nan")], "ra": [1.0, 2.0, 3.0, 4.0], "dec": [0.0, 1.0, 2.0, 3.0]})
    out = sources(cat)
    assert list(zip(out["survey"], out["source"], out["objects"], strict=True)) == [("demo", "kcorrect:x.fits", 3), ("hdf", "(unknown)", 1)]
    assert out["redshift_max"].iloc[0] == pytest.approx(0.3)
