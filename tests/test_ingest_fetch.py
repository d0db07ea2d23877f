"""`fetch` with recorded archive responses (no network): cache, ingest, resume, retries, and the offline message."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import requests
from astropy.io import fits
from astroquery.hips2fits import hips2fits
from astroquery.sdss import SDSS

from embeddings.ingest.fetch import NetworkError, run_fetch
from embeddings.ingest.samples import cutout_header, galaxy_cube, write_sdss_spec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = "object_id,ra,dec\nngc1,150.1,2.2\nngc2,150.2,2.3\n"


class Archive:
    """Recorded responses standing in for CDS hips2fits and the SDSS archive at the network boundary."""

    def __init__(self, tmp_path, fail_first: int = 0):
        self.tmp, self.calls, self.fail_first = tmp_path, [], fail_first
        self.rng = np.random.default_rng(0)

    def hips(self, *, hips, width, height, projection, ra, dec, fov, format):
        self.calls.append(("hips", hips))
        if len(self.calls) <= self.fail_first:
            raise requests.exceptions.HTTPError("503 Server Error: Service Unavailable")
        assert format == "fits" and projection == "TAN" and width == height
        assert fov.arcsec == pytest.approx(width * 0.262)
        plane = galaxy_cube(self.rng, 1, width)[0]
        return fits.HDUList([fits.PrimaryHDU(plane, header=cutout_header(ra.deg, dec.deg, width))])

    def sdss(self, *, coordinates, radius, data_release, cache, show_progress):
        self.calls.append(("sdss", round(coordinates.ra.deg, 4)))
        if coordinates.ra.deg > 150.15:
            return None  # no SDSS spectrum there
        path = write_sdss_spec(self.tmp / "recorded_spec.fits", ra=coordinates.ra.deg, dec=coordinates.dec.deg, z=0.07)
        return [fits.open(path)]


@pytest.fixture
def archive(tmp_path, monkeypatch):
    fake = Archive(tmp_path)
    monkeypatch.setattr(hips2fits, "query", fake.hips)
    monkeypatch.setattr(SDSS, "get_spectra", fake.sdss)
    return fake


def test_fetch_caches_ingests_and_resumes(tmp_path, archive, atlas):
    targets = tmp_path / "targets.csv"
    targets.write_text(TARGETS)
    cache = tmp_path / "cache"
    report = run_fetch(atlas.uri, targets, cache, progress=False, rate=0, backoff=0)
    assert (report.images_fetched, report.spectra_fetched, report.no_spectrum, report.failed) == (6, 1, 1, [])
    assert sorted(p.name for p in (cache / "images").glob("*.fits"))[:3] == ["ngc1_g.fits", "ngc1_r.fits", "ngc1_z.fits"]
    frame = atlas.objects(["object_id", "survey", "image_shape", "spectrum_flux", "redshift"]).set_index("object_id")
    assert sorted(frame.index) == ["ngc1", "ngc2"]  # the spectrum merged onto its cutout object
    assert list(frame.loc["ngc1", "image_shape"]) == [3, 152, 152] and frame.loc["ngc1", "spectrum_flux"] is not None
    assert frame.loc["ngc2", "spectrum_flux"] is None and frame.loc["ngc1", "redshift"] == pytest.approx(0.07)
    assert atlas.surveys()["legacysurvey"]["bands"] == ["g", "r", "z"]

    n_calls = len(archive.calls)
    resumed = run_fetch(atlas.uri, targets, cache, progress=False, rate=0, backoff=0)
    assert len(archive.calls) == n_calls  # everything came from the cache
    assert (resumed.cached, resumed.images_fetched) == (2, 0) and atlas.count("objects") == 2


def test_retries_with_exponential_backoff(tmp_path, monkeypatch, atlas):
    fake = Archive(tmp_path, fail_first=2)
    monkeypatch.setattr(hips2fits, "query", fake.hips)
    monkeypatch.setattr(SDSS, "get_spectra", fake.sdss)
    sleeps = []
    targets = tmp_path / "t.csv"
    targets.write_text("ra,dec\n150.3,2.4\n")
    report = run_fetch(atlas.uri, targets, tmp_path / "c", progress=False, rate=0, backoff=1.0, sleep=sleeps.append)
    assert report.images_fetched == 3 and report.failed == []
    assert sleeps == [1.0, 2.0]


def _offline(*args, **kwargs):
    raise requests.exceptions.ConnectionError("Failed to establish a new connection: Name or service not known")


def test_no_network_is_one_plain_line(tmp_path, monkeypatch, atlas):
    monkeypatch.setattr(hips2fits, "query", _offline)
    targets = tmp_path / "t.csv"
    targets.write_text(TARGETS)
    with pytest.raises(NetworkError, match="no network"):
        run_fetch(atlas.uri, targets, tmp_path / "c", progress=False, rate=0, backoff=0, sleep=lambda s: None)
    script = (
        "import requests, sys\n"
        "from astroquery.hips2fits import hips2fits\n"
        "def offline(*a, **k):\n"
        "    raise requests.exceptions.ConnectionError('Name or service not known')\n"
        "hips2fits.query = offline\n"
        "from embeddings.cli import main\n"
        f"sys.argv = ['embeddings', 'fetch', '--atlas', {str(tmp_path / 'a2')!r}, '--targets', {str(targets)!r},"
        f" '--cache', {str(tmp_path / 'c2')!r}, '--retries', '1']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no network" in err[0] and "Traceback" not in proc.stderr


def test_targets_with_impossible_positions_are_reported_not_fetched(tmp_path, archive, atlas):
    targets = tmp_path / "targets.csv"
    targets.write_text(TARGETS + "far,400,2.0\nsouth,150.3,-95\nword,abc,1\n")
    report = run_fetch(atlas.uri, targets, tmp_path / "cache", progress=False, rate=0, backoff=0)
    assert report.targets == 5 and [f[0] for f in report.failed] == ["targets.csv:row 3", "targets.csv:row 4",
                                                                     "targets.csv:row 5"]
    assert all(why.startswith("bad_position") for _, why in report.failed)
    assert {c[1] for c in archive.calls if c[0] == "sdss"} == {150.1, 150.2}
    assert sorted(atlas.objects(["object_id"])["object_id"]) == ["ngc1", "ngc2"]
