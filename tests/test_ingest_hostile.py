"""Hostile ingest input: storage outside the file, huge declared rows, impossible positions, type clashes, atlas states."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.store import AtlasError, open_atlas
from embeddings.ingest import SourceError, UploadError, run_ingest, validate_upload
from embeddings.ingest.crossmatch import SkyMatcher
from embeddings.ingest.samples import write_mmu_legacysurvey_h5
from tests import hostile


def _reports(atlas) -> list[dict]:
    frame = atlas.table("ingest_reports").to_pandas()
    return [{**row, **json.loads(row["report"])} for row in frame.to_dict("records")]


def _secret_values(atlas) -> set[float]:
    if not atlas.has_table("objects"):
        return set()
    frame = atlas.objects()
    numbers = frame.select_dtypes("number").to_numpy(float).ravel()
    return {float(v) for v in numbers if np.isfinite(v)} & {float(v) for v in hostile.SECRET}


@pytest.mark.parametrize("make", ["external_storage", "virtual", "external_link"])
def test_hdf5_reaching_outside_the_file_is_refused_at_upload_and_ingest(tmp_path, atlas, make):
    secret = hostile.secret_file(tmp_path)
    path = {
        "external_storage": lambda: hostile.external_storage_h5(tmp_path / "x.h5", secret),
        "virtual": lambda: hostile.virtual_h5(tmp_path / "x.h5", tmp_path / "secret.h5"),
        "external_link": lambda: hostile.external_link_h5(tmp_path / "x.h5", tmp_path / "secret.h5"),
    }[make]()
    with pytest.raises(UploadError, match="unsafe_dataset"):
        validate_upload("x.h5", path.read_bytes(), 10**8)
    with pytest.raises(SourceError, match="unsafe_dataset") as err:
        run_ingest(path, atlas.uri, progress=False)
    assert err.value.reason == "unsafe_dataset"
    assert atlas.count("objects") == 0 and not _secret_values(atlas)


def test_tiny_file_declaring_huge_rows_is_refused_before_reading(tmp_path, atlas):
    path = hostile.huge_rows_h5(tmp_path / "huge.h5")
    assert path.stat().st_size < 100_000
    with pytest.raises(UploadError, match="too_large"):
        validate_upload("huge.h5", path.read_bytes(), 10**8)
    with pytest.raises(SourceError, match=r"too_large.*3x30000x30000") as err:
        run_ingest(path, atlas.uri, progress=False)
    assert err.value.reason == "too_large" and atlas.count("objects") == 0


def test_ordinary_hdf5_still_passes_upload_checks(tmp_path):
    path = write_mmu_legacysurvey_h5(tmp_path / "ok.h5", 3, size=32)
    assert validate_upload("ok.h5", path.read_bytes(), 10**8) == ("ok.h5", "hdf5")


@pytest.mark.parametrize(
    ("make", "added", "bad"),
    [
        (hostile.bad_positions_h5, 1, 3),
        (hostile.bad_position_spectrum, 0, 1),
        (hostile.bad_position_cutout, 0, 1),
        (hostile.bad_positions_csv, 1, 3),
    ],
)
def test_impossible_positions_are_skipped_with_their_reason(tmp_path, atlas, make, added, bad):
    suffix = ".csv" if make is hostile.bad_positions_csv else ".h5" if make is hostile.bad_positions_h5 else ".fits"
    report = run_ingest(make(tmp_path / f"src{suffix}"), atlas.uri, progress=False)
    assert (report.added, report.skip_counts) == (added, {"bad_position": bad})
    assert all(len(example) == 2 and example[0] for example in report.examples["bad_position"])
    frame = atlas.objects(["ra", "dec"])
    assert frame["ra"].between(0, 360).all() and frame["dec"].between(-90, 90).all()


def test_cross_match_survives_impossible_positions_stored_before_validation(tmp_path, atlas):
    atlas.upsert("objects", [
        {"object_id": "good", "survey": "s", "ra": 34.0, "dec": -5.0},
        {"object_id": "south", "survey": "s", "ra": 10.0, "dec": -95.0},
        {"object_id": "far", "survey": "s", "ra": 400.0, "dec": 100.0},
        {"object_id": "nan", "survey": "s", "ra": float("nan"), "dec": 1.0},
    ])
    assert SkyMatcher(atlas, 1.0).match(np.array([34.0, 10.0]), np.array([-5.0, -95.0]))[0] == ("good", "s")
    report = run_ingest(hostile.bad_positions_csv(tmp_path / "cat.csv"), atlas.uri, progress=False)
    assert (report.updated, report.skip_counts) == (1, {"bad_position": 3})


def test_existing_positions_are_kept_unless_update_positions(tmp_path, atlas):
    atlas.upsert("objects", [{"object_id": "g1", "survey": "s", "ra": 10.0, "dec": 1.0}])
    path = tmp_path / "cat.csv"
    path.write_text("object_id,ra,dec,morph\ng1,11.0,2.0,spiral\n")
    run_ingest(path, atlas.uri, progress=False)
    row = atlas.get_objects(["g1"], ["ra", "dec", "morph"]).iloc[0]
    assert (row["ra"], row["dec"], row["morph"]) == (10.0, 1.0, "spiral")
    run_ingest(path, atlas.uri, progress=False, update_positions=True)
    row = atlas.get_objects(["g1"], ["ra", "dec"]).iloc[0]
    assert (row["ra"], row["dec"]) == (11.0, 2.0)


def test_label_type_clash_skips_the_column_with_a_reason_and_keeps_the_rest(tmp_path, atlas):
    ids = [f"o{i}" for i in range(12)]
    atlas.upsert("objects", [{"object_id": o, "survey": "s", "ra": 1.0 + i, "dec": 1.0, "redshift_flag": float(i)}
                             for i, o in enumerate(ids)])
    report = run_ingest(hostile.type_clash_csv(tmp_path / "clash.csv", ids), atlas.uri, progress=False, batch_rows=5)
    assert (report.updated, report.skipped, report.status) == (12, 0, "done")
    assert report.dropped_columns["redshift_flag"]["reason"] == "type_mismatch"
    assert report.dropped_columns["redshift_flag"]["rows"] == 12
    frame = atlas.objects(["object_id", "redshift_flag", "comment"]).set_index("object_id")
    assert frame.loc["o3", "redshift_flag"] == 3.0 and (frame["comment"] == "fine").all()
    stored = _reports(atlas)[-1]
    assert stored["status"] == "done" and "redshift_flag" in stored["dropped_columns"]


def test_lossless_label_casts_are_applied(tmp_path, atlas):
    atlas.upsert("objects", [{"object_id": "a", "survey": "s", "ra": 1.0, "dec": 1.0, "mag": 20.5}])
    path = tmp_path / "ints.csv"
    path.write_text("object_id,mag\na,19\n")
    report = run_ingest(path, atlas.uri, progress=False)
    assert report.dropped_columns == {} and atlas.get_objects(["a"], ["mag"])["mag"].iloc[0] == 19.0


def test_failed_ingest_still_stores_its_report(tmp_path, atlas, monkeypatch):
    from embeddings.ingest import writer

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(writer.ObjectWriter, "_write", broken)
    path = tmp_path / "cat.csv"
    path.write_text("object_id,ra,dec\na,1,1\n")
    with pytest.raises(OSError):
        run_ingest(path, atlas.uri, progress=False)
    (stored,) = _reports(atlas)
    assert stored["status"] == "failed" and "disk full" in stored["error"]


def test_atlas_path_that_is_a_file_or_a_foreign_folder_is_refused(tmp_path):
    source = tmp_path / "cat.csv"
    source.write_text("object_id,ra,dec\na,1,1\n")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(AtlasError, match="is a file"):
        run_ingest(source, str(a_file), progress=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("x")
    with pytest.raises(AtlasError, match="not an Arp atlas"):
        run_ingest(source, str(home), progress=False)
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]


def test_damaged_atlases_give_one_clear_error(tmp_path, atlas):
    atlas.upsert("objects", [{"object_id": f"o{i}", "survey": "s", "ra": 1.0, "dec": 1.0} for i in range(50)])
    source = tmp_path / "cat.csv"
    source.write_text("object_id,ra,dec\nnew,1,1\n")
    truncated = Path(str(atlas.uri) + "-truncated")
    shutil.copytree(atlas.uri, truncated)
    for data in (truncated / "objects.lance" / "data").iterdir():
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(AtlasError, match="table objects is damaged"):
        run_ingest(source, str(truncated), progress=False)
    shutil.rmtree(Path(atlas.uri) / "atlas_meta.lance" / "_versions")
    with pytest.raises(AtlasError, match="cannot be opened"):
        open_atlas(atlas.uri)


def test_files_a_folder_ingest_cannot_read_are_reported(tmp_path, atlas):
    folder = tmp_path / "mixed"
    folder.mkdir()
    hostile.bad_position_cutout(folder / "cut.fits")
    write_mmu_legacysurvey_h5(folder / "cube.h5", 2, size=16)
    (folder / "cat.csv").write_text("object_id,ra,dec\na,1,1\n")
    report = run_ingest(folder, atlas.uri, progress=False)
    assert report.skip_counts == {"bad_position": 1, "unsupported_file": 2}
    assert {where for where, _ in report.examples["unsupported_file"]} == {"cube.h5", "cat.csv"}


def test_blank_ids_fall_back_to_the_position_or_are_reported(tmp_path, atlas):
    path = tmp_path / "blank.csv"
    path.write_text("object_id,ra,dec\n\t,10.0,1.0\n   ,,\n")
    report = run_ingest(path, atlas.uri, progress=False)
    assert (report.added, report.skip_counts) == (1, {"no_position": 1})
    assert list(atlas.objects(["object_id"])["object_id"]) == ["J010.00000+01.00000"]


def test_missing_astroclip_redshifts_are_reported(tmp_path, atlas):
    import h5py

    from embeddings.ingest.samples import write_astroclip_h5

    path = write_astroclip_h5(tmp_path / "a.h5", 6, groups=1)
    with h5py.File(path, "a") as f:
        z = f["0/redshifts"][:4]
        del f["0/redshifts"]
        f["0/redshifts"] = z
    report = run_ingest(path, atlas.uri, progress=False)
    assert report.added == 6 and report.dropped_columns["redshift"]["reason"] == "missing_value"
    assert report.dropped_columns["redshift"]["rows"] == 2
    assert atlas.objects(["redshift"])["redshift"].notna().sum() == 4


def test_spectrum_fits_without_coadd_names_what_was_expected(tmp_path, atlas):
    from astropy.io import fits

    path = tmp_path / "spec.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("flux", "E", array=[1.0])],
                                                                   name="SPECTRUM")]).writeto(path)
    with pytest.raises(SourceError, match="SDSS COADD.*SPECTRUM"):
        run_ingest(path, atlas.uri, progress=False)


def test_catalogue_upload_without_id_or_position_columns_is_refused():
    with pytest.raises(UploadError, match="object_id column or ra and dec"):
        validate_upload("cat.csv", b"name,mag\nm31,3.4\n", 10**6)
    assert validate_upload("cat.csv", b"RA,Dec,mag\n1,2,3\n", 10**6) == ("cat.csv", "csv")


def test_reads_are_bounded_by_every_dataset_a_row_uses(tmp_path):
    import h5py

    from embeddings.ingest.hdf5 import CHUNK_BYTES, _rows_per_chunk

    with h5py.File(tmp_path / "wide.h5", "w") as f:
        ids = f.create_dataset("object_id", shape=(10_000,), dtype="S16")
        label = f.create_dataset("NOTE", shape=(10_000,), dtype="S1000000")  # 1 MB of text per row, declared only
        step = _rows_per_chunk(ids, label)
        assert step * 1_000_016 <= CHUNK_BYTES and step >= 1


def test_fits_and_pictures_declaring_huge_data_are_refused(tmp_path, atlas):
    folder = tmp_path / "bombs"
    folder.mkdir()
    hostile.huge_fits_gz(folder / "big.fits.gz")
    hostile.huge_png(folder / "big.png")
    assert (folder / "big.png").stat().st_size < 1_000_000
    report = run_ingest(folder, atlas.uri, progress=False)
    assert report.skip_counts == {"too_large": 2} and atlas.count("objects") == 0
    with pytest.raises(SourceError, match="too_large") as err:
        run_ingest(folder / "big.fits.gz", atlas.uri, progress=False)
    assert err.value.reason == "too_large"
