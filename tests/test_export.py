"""Take it away: selections as CSV/FITS/VOTable, cutout and spectrum FITS, `python -m embeddings export`, SAMP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from backend import anomaly, export, maps, rare, samp, schema, selection, tags
from backend.spaces import read_vectors
from backend.store import AtlasError
from embeddings.cli import main as cli_main
from tests.synthetic import IMAGE, build_synthetic

REPO = Path(__file__).resolve().parent.parent
READ = {"csv": "ascii.csv", "fits": "fits", "votable": "votable"}


@pytest.fixture
def toy(atlas):
    objects = build_synthetic(atlas, n=120)
    rng = np.random.default_rng(1)
    wave = np.linspace(3600.0, 9800.0, 200)
    rows = [
        {"object_id": oid, "image": rng.normal(0, 1, 3 * 16 * 20).astype(np.float32), "image_shape": [3, 16, 20],
         "spectrum_flux": rng.normal(5, 1, 200).astype(np.float32), "spectrum_ivar": np.full(200, 4.0, np.float32)}
        for oid in objects["object_id"][:3]
    ]
    atlas.upsert("objects", pd.DataFrame(rows))
    atlas.register_survey("sdss", bands=["g", "r", "z"], pixel_scale=0.262, wavelength=wave)
    atlas.register_survey("desi", bands=["g", "r", "z"], wavelength=wave)  # no pixel scale: no WCS
    return atlas


def test_any_selection_round_trips_in_every_format(toy, tmp_path):
    chosen = pd.DataFrame({"object_id": ["obj00007", "obj00003", "obj00050"], "similarity": [0.9, 0.8, 0.7]})
    table = export.selection_table(toy, chosen, name="more like obj00001")
    objs = toy.get_objects(list(chosen["object_id"]), ["ra", "dec", "redshift", "morphology"])
    for fmt in export.FORMATS:
        path = export.write_table(table, tmp_path / f"sel{export.SUFFIXES[fmt]}")
        back = Table.read(path, format=READ[fmt])
        assert list(back["object_id"]) == list(chosen["object_id"])  # the selection's order is kept
        assert np.allclose(back["ra"], objs["ra"], rtol=0, atol=1e-9) and np.allclose(back["dec"], objs["dec"], rtol=0, atol=1e-9)
        assert list(back["morphology"]) == list(objs["morphology"])
        assert np.allclose(back["similarity"], [0.9, 0.8, 0.7])
        if fmt != "csv":
            assert str(back["ra"].unit) == "deg"
    with pytest.raises(AtlasError, match="choose a .csv"):
        export.write_table(table, tmp_path / "sel.docx")


def test_cutout_fits_carries_units_bands_and_a_wcs_on_the_object(toy):
    row = toy.get_objects(["obj00000"], ["ra", "dec", "image"]).iloc[0]
    with fits.open(_bytes_file(export.cutout_fits(toy, "obj00000"))) as hdul:
        hdu = hdul[0]
        assert hdu.data.shape == (3, 16, 20) and hdu.header["BUNIT"] == "nanomaggy"
        assert [hdu.header[f"BAND{i}"] for i in (1, 2, 3)] == ["g", "r", "z"]
        assert np.allclose(hdu.data.ravel(), row["image"])
        wcs = WCS(hdu.header).celestial
        centre = wcs.pixel_to_world((20 - 1) / 2, (16 - 1) / 2)
        assert centre.ra.deg == pytest.approx(row["ra"], abs=1e-9) and centre.dec.deg == pytest.approx(row["dec"], abs=1e-9)
        step = centre.separation(wcs.pixel_to_world((20 - 1) / 2, (16 - 1) / 2 + 1)).arcsec
        assert step == pytest.approx(0.262, rel=1e-4)
    with fits.open(_bytes_file(export.cutout_fits(toy, "obj00001"))) as hdul:  # desi: no pixel scale known
        assert "CTYPE1" not in hdul[0].header and "no WCS" in str(hdul[0].header["COMMENT"])
    with pytest.raises(AtlasError, match="no cutout"):
        export.cutout_fits(toy, "obj00099")


def test_spectrum_fits_has_wavelength_flux_ivar_with_units(toy):
    row = toy.get_objects(["obj00002"], ["redshift", "spectrum_flux"]).iloc[0]
    back = Table.read(_bytes_file(export.spectrum_fits(toy, "obj00002")), format="fits")
    assert back.colnames == ["wavelength", "flux", "ivar"] and len(back) == 200
    assert str(back["wavelength"].unit) == "Angstrom" and "erg" in str(back["flux"].unit)
    assert np.allclose(back["flux"], row["spectrum_flux"]) and back.meta["Z"] == pytest.approx(row["redshift"])
    with pytest.raises(AtlasError, match="no spectrum"):
        export.spectrum_fits(toy, "obj00099")


def _bytes_file(data: bytes):
    import io

    return io.BytesIO(data)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch):
    """`python -m embeddings export ARGS` run in this process (same entry point, without a 40 s import per call)."""

    def run(*args: str) -> Done:
        monkeypatch.setattr(sys, "argv", ["python -m embeddings", "export", *args])
        capsys.readouterr()
        code = 0
        try:
            cli_main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return run


def test_the_module_entry_point_runs_export(tmp_path):
    done = subprocess.run([sys.executable, "-m", "embeddings", "export", "--atlas", str(tmp_path / "none"), "--tag", "x",
                           "--out", str(tmp_path / "x.csv")], cwd=REPO, env={**os.environ},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: no atlas at") and "Traceback" not in done.stderr


@pytest.fixture
def discovered(toy):
    """The toy atlas with a stored map (2 PCA axes), rarity-ranked clusters and anomaly scores."""
    ids, vectors = read_vectors(toy, IMAGE.name)
    xy = maps.reduce(vectors, 2)
    toy.replace(schema.maps_table(IMAGE.name), pd.DataFrame({"object_id": ids, "x": xy[:, 0], "y": xy[:, 1], "params_key": "pca"}))
    rare.find_clusters(toy, IMAGE.name, min_cluster_size=8)
    anomaly.compute_anomalies(toy, IMAGE.name, methods=("knn",))
    return toy


def test_cli_exports_tag_ids_cluster_and_top_anomalies(discovered, tmp_path, cli):
    uri = discovered.uri
    tags.add_tag(discovered, ["obj00004", "obj00005"], "ring", note="clear")
    out = tmp_path / "ring.vot"
    done = cli("--atlas", uri, "--tag", "ring", "--format", "votable", "--out", str(out))
    assert done.returncode == 0, done.stderr
    back = Table.read(out, format="votable")
    assert sorted(back["object_id"]) == ["obj00004", "obj00005"] and set(back["note"]) == {"clear"}

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("# my list\nobj00010\nnot-there\nobj00011\n")
    out = tmp_path / "ids.csv"
    done = cli("--atlas", uri, "--ids", str(ids_file), "--format", "csv", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert list(Table.read(out, format="ascii.csv")["object_id"]) == ["obj00010", "obj00011"]
    assert "1 id(s) not in the atlas, skipped: not-there" in done.stderr

    rarest = int(rare.clusters(discovered, IMAGE.name)["cluster"].iloc[0])
    out = tmp_path / "cluster.fits"
    done = cli("--atlas", uri, "--cluster", f"{IMAGE.name}:{rarest}", "--format", "fits", "--out", str(out))
    assert done.returncode == 0, done.stderr
    back = Table.read(out, format="fits")
    assert sorted(back["object_id"]) == sorted(rare.members(discovered, IMAGE.name, rarest))
    assert set(back["cluster_rank"]) == {1}

    out = tmp_path / "top.fits"
    done = cli("--atlas", uri, "--top-anomalies", f"{IMAGE.name}:15", "--format", "fits", "--out", str(out))
    assert done.returncode == 0, done.stderr
    back = Table.read(out, format="fits")
    expected = anomaly.top_anomalies(discovered, IMAGE.name, 15, columns=())["object_id"].tolist()
    assert list(back["object_id"]) == expected and list(back["anomaly_rank"]) == list(range(1, 16))
    assert np.all(np.diff(back["anomaly"]) <= 0)


def test_cli_user_errors_are_one_line_and_exit_2(discovered, tmp_path, cli):
    uri = discovered.uri
    cases = [
        (["--tag", "ring", "--cluster", "x:1"], "exactly one of"),
        (["--tag", "nobody-uses-this"], "no object carries the tag"),
        (["--cluster", f"{IMAGE.name}:999"], "has no cluster 999"),
        (["--top-anomalies", "nope"], "SPACE:N"),
        (["--ids", str(tmp_path / "missing.txt")], "does not exist"),
    ]
    for args, message in cases:
        done = cli("--atlas", uri, *args, "--out", str(tmp_path / "x.csv"))
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    done = cli("--atlas", uri, "--tag", "ring", "--out", str(tmp_path / "x.xlsx"))
    assert done.returncode == 2 and "choose a .csv" in done.stderr


def test_selection_ids_file_accepts_csv_with_object_id(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("object_id,comment\nobj00001,a\nobj00002,b\nobj00001,dup\n")
    assert selection.read_ids_file(path) == ["obj00001", "obj00002"]
    path.write_text("id,comment\nobj00001,a\n")
    with pytest.raises(AtlasError, match="object_id column"):
        selection.read_ids_file(path)


@pytest.fixture
def samp_hub(tmp_path, monkeypatch):
    """A real astropy SAMP hub on 127.0.0.1 with its lockfile in tmp_path, found through $SAMP_HUB."""
    from pyvo.samp import SAMPHubServer

    lockfile = tmp_path / "samp.lock"
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{lockfile.as_uri()}")
    hub = SAMPHubServer(web_profile=False, lockfile=str(lockfile), addr="127.0.0.1")
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def test_without_a_hub_sending_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    assert not samp.hub_running()
    started = time.perf_counter()
    with pytest.raises(samp.SampUnavailable, match="start TOPCAT or Aladin"):
        samp.point_at(10.0, 20.0)
    assert time.perf_counter() - started < 5.0  # no waiting on a hub that is not there


def test_samp_broadcast_reaches_a_listening_client(toy, samp_hub):
    from pyvo.samp import SAMPIntegratedClient

    got: dict[str, dict] = {}

    def receive(private_key, sender_id, mtype, params, extra):
        got[mtype] = params

    listener = SAMPIntegratedClient(name="listener")
    listener.connect()
    try:
        listener.bind_receive_notification("table.load.votable", receive)
        listener.bind_receive_notification("coord.pointAt.sky", receive)
        assert samp.hub_running()
        table = export.selection_table(toy, ["obj00001", "obj00002"], name="two galaxies")
        samp.send_table(table, "two galaxies")
        samp.point_at(226.442734, 12.355612)
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        listener.disconnect()
    sent = got["table.load.votable"]
    assert sent["name"] == "two galaxies"
    assert list(Table.read(sent["url"], format="votable")["object_id"]) == ["obj00001", "obj00002"]
    assert float(got["coord.pointAt.sky"]["ra"]) == pytest.approx(226.442734)
    assert float(got["coord.pointAt.sky"]["dec"]) == pytest.approx(12.355612)
