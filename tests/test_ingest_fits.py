"""Folder ingest: FITS cutouts (cubes and one file per band), PNG/JPEG cutouts, bad files, path safety."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from embeddings.ingest import SourceError, run_ingest
from embeddings.ingest.samples import galaxy_cube, write_cutout_fits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cubes(folder, n, rng, size=40, ra0=180.0):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        write_cutout_fits(folder / f"gal{i}.fits", galaxy_cube(rng, 3, size), ra0 + 0.01 * i, 10.0, ["g", "r", "z"])


def test_folder_of_cubes_reads_bands_position_and_pixel_scale(tmp_path, atlas):
    rng = np.random.default_rng(1)
    _cubes(tmp_path / "cubes", 4, rng)
    report = run_ingest(tmp_path / "cubes", atlas.uri, progress=False)
    assert (report.kind, report.added, report.skipped) == ("fits-cutouts", 4, 0)
    entry = atlas.surveys()["cutouts"]
    assert entry["bands"] == ["g", "r", "z"] and entry["pixel_scale"] == pytest.approx(0.262, rel=1e-3)
    row = atlas.get_objects(["gal2"]).iloc[0]
    assert row["ra"] == pytest.approx(180.02, abs=1e-6) and row["dec"] == pytest.approx(10.0, abs=1e-6)
    cube = fits.getdata(tmp_path / "cubes" / "gal2.fits")
    assert np.array_equal(np.asarray(row["image"]).reshape(row["image_shape"]), cube)


def test_one_file_per_band_with_missing_band_and_shape_mismatch(tmp_path, atlas):
    rng = np.random.default_rng(2)
    folder = tmp_path / "bands"
    folder.mkdir()
    for oid in ("a1", "a2", "a3"):
        cube = galaxy_cube(rng, 3, 32)
        for band, plane in zip("grz", cube, strict=True):
            if oid == "a2" and band == "r":
                continue  # a2 lacks its r band
            sep = "-" if oid == "a3" else "_"
            data = plane[:30, :30] if (oid == "a3" and band == "z") else plane
            write_cutout_fits(folder / f"{oid}{sep}{band}.fits", data, 150.0, 2.0, [band])
    report = run_ingest(folder, atlas.uri, progress=False)
    assert report.added == 1 and atlas.get_objects(["a1"])["image_shape"].iloc[0].tolist() == [3, 32, 32]
    assert report.skip_counts == {"missing_bands": 1, "wrong_shape": 1}
    assert "r" in report.examples["missing_bands"][0][1]


def test_bad_files_are_reported_and_existing_rows_stay_intact(tmp_path, atlas):
    rng = np.random.default_rng(3)
    _cubes(tmp_path / "good", 3, rng)
    run_ingest(tmp_path / "good", atlas.uri, progress=False)
    before = atlas.objects(["object_id", "image", "ra"]).sort_values("object_id").reset_index(drop=True)

    bad = tmp_path / "bad"
    bad.mkdir()
    write_cutout_fits(bad / "gal1.fits", np.full((3, 40, 40), np.nan, np.float32), 1.0, 1.0, ["g", "r", "z"])
    good_bytes = (tmp_path / "good" / "gal0.fits").read_bytes()
    (bad / "gal0.fits").write_bytes(good_bytes[: len(good_bytes) // 2])  # truncated
    (bad / "gal2.fits").write_bytes(b"SIMPLE  = this is not fits")
    write_cutout_fits(bad / "wide.fits", galaxy_cube(rng, 3, 50), 5.0, 5.0, ["g", "r", "z"])
    write_cutout_fits(bad / "fine.fits", galaxy_cube(rng, 3, 40), 6.0, 5.0, ["g", "r", "z"])
    report = run_ingest(bad, atlas.uri, progress=False)
    assert report.skip_counts == {"corrupt_file": 2, "non_finite_pixels": 1, "wrong_shape": 1}
    assert report.added == 1
    after = atlas.objects(["object_id", "image", "ra"]).sort_values("object_id").reset_index(drop=True)
    kept = after[after["object_id"].isin(before["object_id"])].reset_index(drop=True)
    assert kept["object_id"].tolist() == before["object_id"].tolist()
    assert all(np.array_equal(a, b) for a, b in zip(kept["image"], before["image"], strict=True))
    assert kept["ra"].tolist() == before["ra"].tolist()


def test_symlinks_out_of_the_folder_are_not_followed(tmp_path, atlas):
    rng = np.random.default_rng(4)
    _cubes(tmp_path / "inside", 1, rng)
    outside = write_cutout_fits(tmp_path / "secret.fits", galaxy_cube(rng, 3, 40), 1.0, 1.0, ["g", "r", "z"])
    (tmp_path / "inside" / "link.fits").symlink_to(outside)
    (tmp_path / "inside" / "ok.fits").symlink_to(tmp_path / "inside" / "gal0.fits")
    report = run_ingest(tmp_path / "inside", atlas.uri, progress=False)
    assert report.skip_counts == {"unsafe_path": 1}
    assert sorted(atlas.objects(["object_id"])["object_id"]) == ["gal0", "ok"]


def test_png_and_jpeg_cutouts(tmp_path, atlas):
    folder = tmp_path / "pics"
    folder.mkdir()
    rgb = (np.random.default_rng(5).uniform(0, 255, (64, 64, 3))).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "p1.png")
    Image.fromarray(rgb).save(folder / "p2.jpg", quality=95)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    report = run_ingest(folder, atlas.uri, progress=False)
    assert (report.kind, report.added, report.skip_counts) == ("image-folder", 2, {"corrupt_file": 1})
    row = atlas.get_objects(["p1"]).iloc[0]
    cube = np.asarray(row["image"]).reshape(row["image_shape"])
    assert np.allclose(cube, np.moveaxis(rgb, -1, 0) / 255.0, atol=1e-6)
    assert atlas.surveys()["images"]["bands"] == ["red", "green", "blue"]


def test_single_corrupt_file_is_a_user_error_with_one_line(tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    with pytest.raises(SourceError, match="broken.fits"):
        run_ingest(bad, str(tmp_path / "atlas"), progress=False)
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-m", "embeddings", "ingest", str(bad), "--atlas", str(tmp_path / "atlas")],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.fits" in lines[0] and "Traceback" not in proc.stderr


def test_position_from_ra_dec_keywords_when_there_is_no_wcs(tmp_path, atlas):
    header = fits.Header()
    header["RA"], header["DEC"], header["FILTER"] = "10:00:00.0", "+02:30:00", "r"
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU(galaxy_cube(np.random.default_rng(6), 1, 24)[0], header=header).writeto(path)
    report = run_ingest(path, atlas.uri, progress=False, survey="plain")
    assert (report.kind, report.added) == ("fits-cutout", 1)
    row = atlas.get_objects(["plain"]).iloc[0]
    assert row["ra"] == pytest.approx(150.0) and row["dec"] == pytest.approx(2.5)
    assert atlas.surveys()["plain"]["bands"] == ["r"] and list(row["image_shape"]) == [1, 24, 24]
