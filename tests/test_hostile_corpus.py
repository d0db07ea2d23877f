"""The hostile-input corpus through the real CLI: no traceback, exit 0 or 2, every skip named with its reason,
and the rows already in the atlas unchanged (checksums before and after)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.store import open_atlas
from embeddings.cli import main
from embeddings.ingest import run_ingest
from embeddings.ingest.samples import write_mmu_legacysurvey_h5
from tests import hostile
from tests.app_atlas import REPO

REFUSED = {"external_storage": "unsafe_dataset", "virtual_dataset": "unsafe_dataset", "external_link": "unsafe_dataset",
           "huge_rows": "too_large", "truncated_h5": "truncated", "truncated_fits": "truncated",
           "huge_fits": "too_large", "huge_png": "too_large"}


def cli(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run `python -m embeddings ARGS` in this process; (exit code, stdout, stderr)."""
    argv = sys.argv
    sys.argv = ["embeddings", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def checksums(uri: str, ids: list[str], columns: list[str]) -> dict[str, str]:
    """A digest per existing object over the columns it had before the corpus ran."""
    frame = open_atlas(uri).get_objects(ids, columns)
    out = {}
    for row in frame.to_dict("records"):
        digest = hashlib.sha256()
        for col in columns:
            value = row[col]
            digest.update(value.tobytes() if hasattr(value, "tobytes") else repr(value).encode())
        out[row["object_id"]] = digest.hexdigest()
    return out


@pytest.fixture
def existing(tmp_path: Path) -> tuple[str, list[str], list[str]]:
    """An atlas holding a few real objects (images, positions, a numeric label) before the corpus arrives."""
    uri = str(tmp_path / "atlas")
    run_ingest(write_mmu_legacysurvey_h5(tmp_path / "base.h5", 4, size=32, ra0=34.0, dec0=-5.0), uri, progress=False)
    atlas = open_atlas(uri)
    ids = sorted(atlas.objects(["object_id"])["object_id"])
    atlas.upsert("objects", [{"object_id": oid, "redshift_flag": float(i)} for i, oid in enumerate(ids)])
    columns = list(open_atlas(uri).table("objects").schema.names)
    return uri, ids, columns


def test_corpus_through_the_cli(tmp_path: Path, existing, capsys: pytest.CaptureFixture) -> None:
    uri, ids, columns = existing
    before = checksums(uri, ids, columns)
    corpus = hostile.corpus(tmp_path / "corpus", ids)
    for name, path in corpus.items():
        code, out, err = cli("ingest", str(path), "--atlas", uri, "--no-progress", "--match-radius", "1",
                             capsys=capsys)
        assert "Traceback" not in out + err, (name, err)
        assert code in (0, 2), (name, code, err)
        if name in REFUSED:
            assert code == 2, (name, out)
            assert err.startswith("error: ") and err.count("\n") == 1 and path.name in err, (name, err)
            assert REFUSED[name] in err, (name, err)
        else:
            assert code == 0, (name, err)
    reports = open_atlas(uri).table("ingest_reports").to_pandas()
    for row in reports.to_dict("records"):
        body = json.loads(row["report"])
        assert body["status"] == "done", row["source"]
        assert row["skipped"] == sum(body["skip_counts"].values())
        for reason, n in body["skip_counts"].items():
            examples = body["examples"][reason]
            assert len(examples) == min(n, 5) and all(where and detail for where, detail in examples), reason
    skipped = {Path(r["source"]).name: json.loads(r["report"])["skip_counts"] for r in reports.to_dict("records")}
    assert skipped["positions.h5"]["bad_position"] == 3 and skipped["positions.csv"] == {"bad_position": 3}
    assert skipped["spec-bad.fits"] == {"bad_position": 1} and skipped["cutout-bad.fits"] == {"bad_position": 1}
    clash = next(json.loads(r["report"]) for r in reports.to_dict("records") if r["source"].endswith("clash.csv"))
    assert clash["dropped_columns"]["redshift_flag"]["reason"] == "type_mismatch"
    assert checksums(uri, ids, columns) == before
    numbers = open_atlas(uri).objects().select_dtypes("number").to_numpy(float).ravel()
    assert not set(numbers.tolist()) & set(hostile.SECRET.tolist())  # no byte of the server's file got in


def test_corpus_folder_and_atlas_states(tmp_path: Path, existing, capsys: pytest.CaptureFixture) -> None:
    uri, ids, columns = existing
    before = checksums(uri, ids, columns)
    folder = tmp_path / "corpus"
    hostile.corpus(folder, ids)
    code, out, err = cli("ingest", str(folder), "--atlas", uri, "--no-progress", capsys=capsys)
    assert code == 0 and "Traceback" not in out + err
    assert "unsupported_file" in out and "bad_position" in out and "corrupt_file" in out and "too_large" in out
    assert checksums(uri, ids, columns) == before

    source = folder / "positions.csv"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    damaged = tmp_path / "damaged"
    shutil.copytree(uri, damaged)
    for data in (damaged / "objects.lance" / "data").iterdir():
        data.write_bytes(data.read_bytes()[:100])
    no_versions = tmp_path / "no-versions"
    shutil.copytree(uri, no_versions)
    shutil.rmtree(no_versions / "atlas_meta.lance" / "_versions")
    for target, message in ((a_file, "is a file"), (foreign, "not an Arp atlas"), (damaged, "table objects is damaged"),
                            (no_versions, "cannot be opened")):
        listing = sorted(p.name for p in target.iterdir()) if target.is_dir() else None
        code, out, err = cli("ingest", str(source), "--atlas", str(target), "--no-progress", capsys=capsys)
        assert (code, out) == (2, ""), (target, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err and "Traceback" not in err
        assert listing is None or sorted(p.name for p in target.iterdir()) == listing


def test_real_cli_process_refuses_an_unsafe_file_in_one_line(tmp_path: Path) -> None:
    secret = hostile.secret_file(tmp_path)
    path = hostile.external_storage_h5(tmp_path / "external.h5", secret)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "embeddings", "ingest", str(path), "--atlas", str(tmp_path / "a"),
                           "--no-progress"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: external.h5: refused (unsafe_dataset): /EBV keeps its data in external raw storage; "
        "only self-contained HDF5 files are read"]
