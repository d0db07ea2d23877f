"""HDF5 ingest in the AstroCLIP and Multimodal Universe layouts: content, idempotency, bad rows, streaming."""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest

from backend.spectra import desi_wavelength
from embeddings.ingest import SourceError, run_ingest
from embeddings.ingest import hdf5 as hdf5_mod
from embeddings.ingest.samples import write_astroclip_h5, write_mmu_desi_h5, write_mmu_legacysurvey_h5


def test_astroclip_layout_ingests_images_spectra_redshifts(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "astroclip.h5", 12, groups=2)
    report = run_ingest(path, atlas.uri, progress=False)
    assert (report.added, report.skipped) == (12, 0)
    survey = atlas.surveys()["astroclip"]
    assert survey["bands"] == ["g", "r", "z"] and survey["pixel_scale"] == 0.262
    assert survey["image_shape"] == [3, 152, 152]
    assert np.allclose(survey["wavelength"], desi_wavelength())
    with h5py.File(path) as f:
        tid, stored_img, stored_spec, z = f["1"]["targetids"][2], f["1"]["images"][2], f["1"]["spectra"][2], f["1"]["redshifts"][2]
    row = atlas.get_objects([str(tid)]).iloc[0]
    cube = np.asarray(row["image"]).reshape(row["image_shape"])
    assert np.array_equal(cube, stored_img.T)  # bands x H x W, AstroCLIP's transpose undone
    assert np.allclose(row["spectrum_flux"], stored_spec[:, 0])
    assert row["spectrum_ivar"] is None  # AstroCLIP files carry no noise estimate: unknown, not zero
    assert row["redshift"] == pytest.approx(float(z))
    assert row["thumbnail"][:8] == b"\x89PNG\r\n\x1a\n"
    saved = atlas.table("ingest_reports").to_pandas()
    assert list(saved["added"]) == [12] and saved["kind"][0] == "hdf5-astroclip"


def test_reingesting_the_same_file_adds_no_duplicates(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "a.h5", 6, groups=1, spectra_3d=False)
    run_ingest(path, atlas.uri, progress=False)
    again = run_ingest(path, atlas.uri, progress=False)
    assert (again.added, again.updated) == (0, 6)
    assert atlas.count("objects") == 6


def test_mmu_legacysurvey_and_desi_merge_into_one_object_per_galaxy(tmp_path, atlas):
    img = write_mmu_legacysurvey_h5(tmp_path / "ls.hdf5", 5, size=48)
    spec = write_mmu_desi_h5(tmp_path / "desi.hdf5", 5)
    r1 = run_ingest(img, atlas.uri, progress=False, bands="g,r,z")
    assert r1.added == 5
    entry = atlas.surveys()["legacysurvey"]
    assert entry["bands"] == ["g", "r", "z"] and entry["pixel_scale"] == pytest.approx(0.262)
    r2 = run_ingest(spec, atlas.uri, progress=False, match_radius=1.0)
    assert (r2.added, r2.updated) == (0, 5)
    frame = atlas.objects(["object_id", "survey", "image_shape", "spectrum_flux", "redshift", "psf_fwhm_g", "flux_g"])
    assert len(frame) == 5
    assert all(s is not None for s in frame["spectrum_flux"]) and all(list(s) == [3, 48, 48] for s in frame["image_shape"])
    assert frame["redshift"].notna().all() and frame["psf_fwhm_g"].between(1.0, 1.5).all() and frame["flux_g"].notna().all()


def test_bad_rows_are_skipped_with_reasons_and_good_rows_land(tmp_path, atlas):
    path = write_astroclip_h5(tmp_path / "bad.h5", 8, groups=1)
    with h5py.File(path, "a") as f:
        g = f["0"]
        img = g["images"][1]
        img[10, 10, 0] = np.nan
        g["images"][1] = img
        g["spectra"][2] = 0.0
        g["targetids"][3] = g["targetids"][4]
    report = run_ingest(path, atlas.uri, progress=False)
    assert report.skip_counts == {"non_finite_pixels": 1, "all_zero_spectrum": 1, "duplicate_id": 1}
    assert report.added == 5 and atlas.count("objects") == 5
    assert any("row 1" in where for where, _ in report.examples["non_finite_pixels"])


def test_wrong_image_shape_and_corrupt_file(tmp_path, atlas):
    path = tmp_path / "shape.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((3, 152, 152, 4), np.float32)
        f["targetids"] = np.arange(3)
    report = run_ingest(path, atlas.uri, progress=False)
    assert report.skip_counts == {"wrong_shape": 3} and report.added == 0
    good = write_astroclip_h5(tmp_path / "good.h5", 4, groups=1)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(SourceError, match="truncated.h5"):
        run_ingest(truncated, atlas.uri, progress=False)


def test_hdf5_is_read_in_chunks_with_bounded_memory(tmp_path, atlas, monkeypatch):
    path = write_astroclip_h5(tmp_path / "big.h5", 240, groups=1)
    size = path.stat().st_size
    monkeypatch.setattr(hdf5_mod, "CHUNK_BYTES", 4 * 2**20)
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        out = original(self, key)
        if self.name.endswith("images"):
            reads.append(len(out))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    tracemalloc.start()
    report = run_ingest(path, atlas.uri, progress=False, batch_rows=16)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.added == 240
    assert len(reads) >= 10 and max(reads) <= 16  # ~4 MB slices of ~0.3 MB rows, never the whole dataset
    assert peak < size / 3, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


def test_a_corrupt_chunk_skips_only_its_rows(tmp_path, atlas, monkeypatch):
    path = tmp_path / "mmu.hdf5"
    write_mmu_desi_h5(path, 6)
    with h5py.File(path, "a") as f:  # re-store the fluxes gzip-compressed, one row per chunk
        flux = f["spectrum_flux"][:]
        del f["spectrum_flux"]
        f.create_dataset("spectrum_flux", data=flux, chunks=(1, flux.shape[1]), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["spectrum_flux"].id.get_chunk_info(3)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(hdf5_mod, "CHUNK_BYTES", 100_000)  # ~one row per read
    report = run_ingest(path, atlas.uri, progress=False)
    assert report.skip_counts == {"corrupt_file": 1} and report.added == 5
    assert "row 3" in report.examples["corrupt_file"][0][0]
    assert "39627000000000003" not in set(atlas.objects(["object_id"])["object_id"])
