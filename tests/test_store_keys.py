"""Declared primary keys: concurrent upserts of the same new keys store each key once, old atlases are migrated
in place with every row kept, and tables already holding a key twice are named rather than migrated."""

from __future__ import annotations

import logging
import multiprocessing as mp
import re
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from backend import schema
from backend.store import AtlasError, DuplicateKeyError, open_atlas
from backend.store.atlas import KEYS_DECLARED

KEYED = ("objects", "vectors__enc__image", schema.META, schema.JOBS, schema.PROBES, schema.INGEST_REPORTS)


def _undeclared(tbl_schema: pa.Schema, *, nullable_key: str | None = None) -> pa.Schema:
    """A schema as Arp wrote it before keys were declared: no primary-key marker (optionally a nullable key)."""
    fields = [f.remove_metadata() for f in tbl_schema]
    return pa.schema([f.with_nullable(True) if f.name == nullable_key else f for f in fields])


def _old_atlas(path: Path, object_ids: list[str | None], *, nullable_key: bool = False) -> str:
    """An atlas laid out the way Arp wrote it before this change, with some rows in each keyed table."""
    db = lancedb.connect(str(path))
    for name, tbl_schema in schema.FIXED_TABLES.items():
        db.create_table(name, schema=_undeclared(tbl_schema))
    db.open_table(schema.META).add([{"key": "schema_version", "value": str(schema.SCHEMA_VERSION)},
                                    {"key": "created_at", "value": '"2026-01-01"'}])
    db.open_table(schema.JOBS).add([{"job_id": "j1", "kind": "embed", "status": "done"}])
    db.open_table(schema.TAGS).add([{"object_id": "o1", "tag": "ring", "action": "add"}])
    objects = _undeclared(schema.OBJECT_CORE, nullable_key="object_id" if nullable_key else None)
    rows = [{"object_id": oid, "survey": "t", "ra": float(i), "redshift": 0.1} for i, oid in enumerate(object_ids)]
    db.create_table("objects", data=pa.Table.from_pylist(rows, schema=objects))
    vectors = _undeclared(schema.vectors_schema(2))
    db.create_table("vectors__enc__image", data=pa.Table.from_pylist(
        [{"object_id": f"o{i}", "vector": [float(i), 1.0], "encoder": "enc"} for i in range(3)], schema=vectors))
    return str(path)


def _snapshot(uri: str) -> dict[str, list[dict]]:
    db = lancedb.connect(uri)
    return {name: sorted(db.open_table(name).to_arrow().to_pylist(), key=repr) for name in db.table_names()}


def _declared(uri: str, name: str) -> bool:
    field = lancedb.connect(uri).open_table(name).schema.field(schema.table_key(name) or "")
    return schema.is_primary_key(field) and not field.nullable


def test_new_atlas_tables_declare_their_upsert_keys(atlas) -> None:
    atlas.upsert("objects", [{"object_id": "a", "ra": 1.0}])
    atlas.upsert("vectors__enc__image", [{"object_id": "a", "vector": [1.0, 2.0]}], create_schema=schema.vectors_schema(2))
    atlas.upsert("custom", [{"name": "x", "v": 1}], key="name")
    for name in ("objects", "vectors__enc__image", schema.META, schema.JOBS, schema.PROBES, schema.INGEST_REPORTS):
        assert _declared(atlas.uri, name), name
    custom = atlas.table("custom").schema.field("name")
    assert schema.is_primary_key(custom) and not custom.nullable
    assert atlas.get_meta(KEYS_DECLARED) is True


@pytest.mark.parametrize("nullable_key", [False, True])
def test_old_atlas_gets_its_keys_declared_with_every_row_intact(tmp_path: Path, nullable_key: bool) -> None:
    uri = _old_atlas(tmp_path / "old", ["o1", "o2", "o3"], nullable_key=nullable_key)
    before = _snapshot(uri)
    assert not any(_declared(uri, name) for name in KEYED)
    atlas = open_atlas(uri)
    assert all(_declared(uri, name) for name in KEYED)
    after = _snapshot(uri)
    after[schema.META] = [r for r in after[schema.META] if r["key"] != KEYS_DECLARED]
    assert after == before  # same tables, same rows, same values
    assert atlas.get_meta(KEYS_DECLARED) is True
    atlas.upsert("objects", [{"object_id": "o2", "ra": 9.0}, {"object_id": "o4", "ra": 4.0}])
    frame = atlas.objects(["object_id", "ra"]).set_index("object_id")
    assert sorted(frame.index) == ["o1", "o2", "o3", "o4"] and frame.loc["o2", "ra"] == 9.0


def test_table_with_a_key_stored_twice_is_named_and_left_as_it_was(tmp_path: Path, caplog) -> None:
    uri = _old_atlas(tmp_path / "old", ["o1", "o2", "o1", "o3", "o2"])
    lancedb.connect(uri).open_table("objects").add(pa.Table.from_pylist(
        [{"object_id": "o3", "ra": 30.0}], schema=_undeclared(schema.OBJECT_CORE)))  # the newest copy of o3
    with caplog.at_level(logging.WARNING, logger="backend.store.atlas"):
        atlas = open_atlas(uri)
    assert "table objects holds 3 object_id value(s) more than once (o1, o2, o3)" in caplog.text
    assert not _declared(uri, "objects") and atlas.count("objects") == 6  # not migrated, nothing lost
    assert _declared(uri, "vectors__enc__image") and atlas.get_meta(KEYS_DECLARED) is None
    with pytest.raises(DuplicateKeyError, match=rf"table objects .*\(o1, o2, o3\).*embeddings dedupe --table objects --atlas {re.escape(uri)}"):
        atlas.verify()

    from embeddings.cli import app

    result = CliRunner().invoke(app, ["dedupe", "--atlas", uri, "--table", "objects"])
    assert result.exit_code == 0, result.output
    assert "objects: 3 duplicate row(s) deleted" in result.output
    frame = atlas.objects(["object_id", "ra"]).set_index("object_id")
    assert sorted(frame.index) == ["o1", "o2", "o3"] and frame.loc["o3", "ra"] == 30.0
    assert _declared(uri, "objects")
    assert open_atlas(uri).get_meta(KEYS_DECLARED) is True
    open_atlas(uri).verify()


def test_rows_without_a_key_are_reported_not_migrated(tmp_path: Path, caplog) -> None:
    uri = _old_atlas(tmp_path / "old", ["o1", None], nullable_key=True)
    with caplog.at_level(logging.WARNING, logger="backend.store.atlas"):
        atlas = open_atlas(uri)
    assert "table objects has 1 row(s) without a object_id" in caplog.text
    assert not _declared(uri, "objects") and atlas.count("objects") == 2
    with pytest.raises(AtlasError, match="table objects has 1 row"):
        atlas.verify()


def _racer(uri: str, rounds: int, barrier) -> None:
    atlas = open_atlas(uri)
    for r in range(rounds):
        rows = [{"object_id": f"r{r:03d}-{i:03d}", "ra": float(i)} for i in range(50)]
        barrier.wait(timeout=300)
        atlas.upsert("objects", rows)


def _race(uri: str, rounds: int) -> list[str]:
    """Two processes upsert the same 50 new keys at the same moment, `rounds` times; the keys stored twice."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_racer, args=(uri, rounds, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0
    ids = open_atlas(uri).objects(["object_id"])["object_id"]
    assert set(ids) == {"seed"} | {f"r{r:03d}-{i:03d}" for r in range(rounds) for i in range(50)}
    return sorted(set(ids[ids.duplicated()]))


@pytest.mark.slow
@pytest.mark.parametrize("made", ["new", "migrated"])
def test_concurrent_upserts_of_the_same_new_keys_store_each_key_once(tmp_path: Path, made: str) -> None:
    uri = str(tmp_path / "a")
    if made == "new":
        open_atlas(uri, create=True).upsert("objects", [{"object_id": "seed"}])
    else:
        _old_atlas(tmp_path / "a", ["seed"])
        open_atlas(uri)
    assert _race(uri, rounds=20) == []


@pytest.mark.slow
def test_undeclared_key_lets_concurrent_upserts_store_keys_twice(tmp_path: Path) -> None:
    """The control: the same race on a table without the declared key duplicates (Lance #4585), so the test
    above is what a real race looks like; if this starts failing, Lance detects the conflict by itself."""
    uri = _old_atlas(tmp_path / "a", ["seed"])
    lancedb.connect(uri).open_table(schema.META).add([{"key": KEYS_DECLARED, "value": "true"}])  # skip the migration
    assert not _declared(uri, "objects")
    assert _race(uri, rounds=20) != []
