"""The atlas store: schema versioning, idempotent upserts, and writes that survive a second writer."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend import schema
from backend.spaces import SpaceInfo, read_vectors, register_space, write_vectors
from backend.store import AtlasNotFoundError, MixedSpaceError, SchemaVersionError, open_atlas, utcnow


def _objects(ids: range, survey: str = "t") -> list[dict]:
    return [{"object_id": f"o{i:05d}", "survey": survey, "ra": float(i), "dec": 1.0, "redshift": 0.1} for i in ids]


def test_missing_atlas_names_the_command_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(AtlasNotFoundError, match="python -m embeddings demo"):
        open_atlas(tmp_path / "nowhere")


def test_folder_without_meta_is_not_an_atlas(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    with pytest.raises(AtlasNotFoundError, match="not an Arp atlas"):
        open_atlas(tmp_path / "stuff")


def test_other_schema_version_gives_clear_message(tmp_path: Path) -> None:
    atlas = open_atlas(tmp_path / "a", create=True)
    atlas.set_meta("schema_version", schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError, match=f"schema version {schema.SCHEMA_VERSION + 1}"):
        open_atlas(tmp_path / "a")


def test_upsert_is_idempotent_and_updates_in_place(atlas) -> None:
    atlas.upsert("objects", _objects(range(50)))
    atlas.upsert("objects", _objects(range(25, 75)))
    frame = atlas.objects(["object_id", "ra"])
    assert len(frame) == 75 and frame["object_id"].is_unique
    atlas.upsert("objects", [{"object_id": "o00003", "ra": 99.0}])
    row = atlas.get_objects(["o00003"], ["ra", "redshift"]).iloc[0]
    assert row["ra"] == 99.0 and row["redshift"] == pytest.approx(0.1)  # untouched columns kept


def test_new_label_columns_are_added_without_losing_rows(atlas) -> None:
    atlas.upsert("objects", _objects(range(10)))
    atlas.upsert("objects", [{"object_id": "o00001", "morphology": "ring"}])
    frame = atlas.objects(["object_id", "morphology"]).set_index("object_id")
    assert len(frame) == 10 and frame.loc["o00001", "morphology"] == "ring"
    assert "morphology" in atlas.label_columns()


def test_survey_metadata_round_trips(atlas) -> None:
    grid = np.linspace(3600, 9824, 7781)
    atlas.register_survey("s", bands=["g", "r", "z"], pixel_scale=0.262, image_shape=[3, 64, 64], wavelength=grid)
    reopened = open_atlas(atlas.uri)
    assert reopened.surveys()["s"]["bands"] == ["g", "r", "z"]
    np.testing.assert_allclose(reopened.wavelength("s"), grid)


def test_space_refuses_vectors_from_another_revision(atlas) -> None:
    info = SpaceInfo("enc", "image", 4, "rev-a", "pre-1")
    register_space(atlas, info)
    write_vectors(atlas, info, ["a", "b"], np.ones((2, 4)))
    write_vectors(atlas, info, ["b", "c"], np.zeros((2, 4)))  # idempotent by id
    ids, mat = read_vectors(atlas, "enc__image")
    assert sorted(ids) == ["a", "b", "c"] and mat.shape == (3, 4)
    row = atlas.table(info.table).search().where("object_id = 'b'").to_list()[0]
    assert row["weights_revision"] == "rev-a" and row["preprocess_version"] == "pre-1"
    with pytest.raises(MixedSpaceError, match="rev-a"):
        register_space(atlas, SpaceInfo("enc", "image", 4, "rev-b", "pre-1"))


def _bulk_writer(uri: str, start: int, n: int) -> None:
    atlas = open_atlas(uri)
    for lo in range(start, start + n, 100):
        atlas.upsert("objects", _objects(range(lo, lo + 100)))


def _tag_writer(uri: str, who: str, n: int) -> None:
    atlas = open_atlas(uri)
    for i in range(n):
        atlas.append(
            "tags",
            [{"object_id": f"o{i:05d}", "tag": "ring", "action": "add", "note": "", "author": who, "created_at": utcnow()}],
        )


def test_tags_and_concurrent_upserts_all_land(atlas) -> None:
    atlas.upsert("objects", _objects(range(100)))
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_bulk_writer, args=(atlas.uri, 0, 1500)),
        ctx.Process(target=_bulk_writer, args=(atlas.uri, 1000, 1500)),  # overlapping ids: merge conflicts
        ctx.Process(target=_tag_writer, args=(atlas.uri, "alice", 30)),
        ctx.Process(target=_tag_writer, args=(atlas.uri, "bob", 30)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    tags = atlas.table("tags").to_pandas()
    assert len(tags) == 60 and set(tags["author"]) == {"alice", "bob"}
    frame = atlas.objects(["object_id"])
    assert len(frame) == 2500 and frame["object_id"].is_unique


def test_optimize_keeps_rows(atlas) -> None:
    for lo in range(0, 300, 50):
        atlas.upsert("objects", _objects(range(lo, lo + 50)))
    atlas.optimize("objects")
    assert atlas.count("objects") == 300


def _metadata_writer(uri: str, who: int, n: int) -> None:
    atlas = open_atlas(uri)
    for i in range(n):
        atlas.register_survey(f"survey-{who}-{i}", bands=["g", "r"], pixel_scale=0.262)
        register_space(atlas, SpaceInfo(f"enc-{who}-{i}", "image", 8, "rev", "pre"))


def test_concurrent_survey_and_space_registrations_are_all_kept(atlas) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_metadata_writer, args=(atlas.uri, who, 30)) for who in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    surveys = atlas.surveys()
    assert len(surveys) == 90 and all(entry["bands"] == ["g", "r"] for entry in surveys.values())
    spaces = atlas.meta_items("space:")
    assert len(spaces) == 90 and {s["encoder"] for s in spaces.values()} == {f"enc-{w}-{i}" for w in range(3) for i in range(30)}


def test_surveys_registered_in_the_old_single_value_layout_are_still_read(atlas) -> None:
    atlas.set_meta("surveys", {"old": {"bands": ["r"], "pixel_scale": 0.4}})
    atlas.register_survey("old", image_shape=[1, 8, 8])
    atlas.register_survey("new", bands=["g"])
    surveys = atlas.surveys()
    assert surveys["old"] == {"bands": ["r"], "pixel_scale": 0.4, "image_shape": [1, 8, 8]}
    assert surveys["new"] == {"bands": ["g"]}


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_update_columns_writes_measured_columns_without_copying_the_pixels(atlas) -> None:
    rng = np.random.default_rng(0)
    rows = _objects(range(400))
    for row in rows:
        row["image"] = rng.normal(size=3 * 32 * 32).astype(np.float32).tolist()
    atlas.upsert("objects", rows)
    atlas.update_columns("objects", [{"object_id": f"o{i:05d}", "morph_gini": 0.5} for i in range(400)])
    before = _folder_bytes(Path(atlas.uri))

    measured = [{"object_id": f"o{i:05d}", "morph_gini": i / 1000} for i in range(0, 400, 2)]
    matched = atlas.update_columns("objects", measured + [{"object_id": "not-here", "morph_gini": 9.0}])

    assert matched == 200
    grown = _folder_bytes(Path(atlas.uri)) - before
    assert grown < 0.1 * before  # a row upsert would add ~1.6 MB of pixels again
    frame = atlas.objects(["object_id", "morph_gini", "ra"]).set_index("object_id")
    assert len(frame) == 400 and "not-here" not in frame.index  # unknown keys are skipped, not inserted
    assert frame.loc["o00004", "morph_gini"] == 0.004 and frame.loc["o00005", "morph_gini"] == 0.5  # others kept
    assert frame.loc["o00005", "ra"] == 5.0
    image = atlas.scan_arrow("objects", ["image"], where="object_id = 'o00004'").column("image")[0].as_py()
    assert np.allclose(image, rows[4]["image"])


def _column_writer(uri: str, rounds: int) -> None:
    atlas = open_atlas(uri)
    for k in range(rounds):
        rows = [{"object_id": f"o{i:05d}", "morph_gini": float(k), f"line_{k}": float(k)} for i in range(100)]
        atlas.update_columns("objects", rows)  # one column it has (after the first round), one new each round


def test_measured_columns_written_during_an_ingest_keep_every_row(atlas) -> None:
    atlas.upsert("objects", _objects(range(100)))
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_bulk_writer, args=(atlas.uri, 100, 1500)),
        ctx.Process(target=_column_writer, args=(atlas.uri, 8)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    frame = atlas.objects(["object_id", "morph_gini", *[f"line_{k}" for k in range(8)]]).set_index("object_id")
    assert len(frame) == 1600 and frame.index.is_unique
    measured = [f"o{i:05d}" for i in range(100)]
    assert (frame.loc[measured, "morph_gini"] == 7.0).all()
    assert all((frame.loc[measured, f"line_{k}"] == k).all() for k in range(8))
    assert frame.drop(measured).isna().all().all()  # the ingest's rows untouched


def test_update_columns_adds_a_new_column_with_its_values_in_one_commit(atlas) -> None:
    atlas.upsert("objects", _objects(range(50)))
    before = atlas.version("objects")
    matched = atlas.update_columns("objects", [{"object_id": f"o{i:05d}", "line_d4000n": 1.5} for i in range(0, 60, 3)])
    assert matched == 17  # o00051 .. o00057 are not in the table
    assert atlas.version("objects") == before + 1  # no commit where a reader sees the column empty
    frame = atlas.objects(["object_id", "line_d4000n"]).set_index("object_id")
    assert len(frame) == 50
    assert (frame.loc[["o00000", "o00048"], "line_d4000n"] == 1.5).all() and frame["line_d4000n"].isna().sum() == 33


def _same_column_writer(uri: str, value: float, barrier: Any) -> None:
    atlas = open_atlas(uri)
    for k in range(6):
        barrier.wait(timeout=120)  # both writers find the column missing at once
        atlas.update_columns("objects", [{"object_id": f"o{i:05d}", f"line_{k}": value} for i in range(100)])


def test_two_writers_adding_the_same_new_column_both_succeed(atlas) -> None:
    atlas.upsert("objects", _objects(range(100)))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_same_column_writer, args=(atlas.uri, v, barrier)) for v in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0  # the second to add a column rewrites it instead of failing
    frame = atlas.objects(["object_id", *[f"line_{k}" for k in range(6)]]).set_index("object_id")
    assert all(frame[f"line_{k}"].isin([1.0, 2.0]).all() and frame[f"line_{k}"].nunique() == 1 for k in range(6))
