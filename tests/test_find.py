"""Find by id, name-like id or RA/Dec cone (degrees or sexagesimal); links out and coordinate text."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from backend import find, links
from backend.store import AtlasError
from tests.synthetic import build_synthetic


@pytest.fixture
def toy(atlas):
    build_synthetic(atlas, n=60)
    extra = pd.DataFrame(
        {
            "object_id": ["wrap-east", "wrap-west", "pole-a", "pole-b", "NGC 4565"],
            "survey": "other",
            "ra": [359.9995, 0.0004, 10.0, 190.0, 189.0865],
            "dec": [5.0, 5.0, 89.9995, 89.9996, 25.9875],
            "redshift": np.array([0.1, 0.1, 0.2, 0.2, 0.004], np.float32),
        }
    )
    atlas.upsert("objects", extra)
    return atlas


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("226.442734 +12.355612", (226.442734, 12.355612)),
        ("226.442734, -12.5", (226.442734, -12.5)),
        ("15:05:46.256 +12:21:20.20", (226.44273, 12.35561)),
        ("15h05m46.256s +12d21m20.20s", (226.44273, 12.35561)),
        ("15 05 46.256 -12 21 20.2", (226.44273, -12.35561)),
    ],
)
def test_positions_in_degrees_and_sexagesimal(text, expected):
    ra, dec = find.parse_position(text)
    assert ra == pytest.approx(expected[0], abs=2e-5) and dec == pytest.approx(expected[1], abs=2e-5)


@pytest.mark.parametrize("text", ["sdss-00042", "hello", "226.4", "", "10 95"])
def test_text_that_is_not_a_position(text):
    assert find.parse_position(text) is None


def test_sexagesimal_text_reads_back_to_the_same_position():
    ra, dec = 226.442734, 12.355612
    assert links.degrees_text(ra, dec) == "226.442734 +12.355612"
    back = find.parse_position(links.sexagesimal_text(ra, dec))
    assert back[0] == pytest.approx(ra, abs=1e-6) and back[1] == pytest.approx(dec, abs=1e-6)
    assert links.sexagesimal_text(ra, dec).startswith("15:05:46.2")


def test_cone_search_is_exact_across_the_ra_wrap_and_near_the_pole(toy):
    east = find.cone_search(toy, 0.0, 5.0, 3.0)
    assert set(east["object_id"]) == {"wrap-east", "wrap-west"}
    assert east["separation_arcsec"].is_monotonic_increasing
    assert find.cone_search(toy, 0.0, 5.0, 1.0).empty  # both are ~1.4-1.8" away
    pole = find.cone_search(toy, 100.0, 90.0, 2.0)
    assert set(pole["object_id"]) == {"pole-a", "pole-b"}
    # against brute force over the whole catalogue
    objs = toy.objects(["object_id", "ra", "dec"])
    for ra, dec, radius in [(155.0, 5.0, 3600.0), (150.2, 0.1, 1800.0)]:
        sep = find.separation_arcsec(ra, dec, objs["ra"].to_numpy(), objs["dec"].to_numpy())
        expected = set(objs.loc[sep <= radius, "object_id"])
        assert set(find.cone_search(toy, ra, dec, radius, limit=1000)["object_id"]) == expected
    with pytest.raises(AtlasError, match="positive radius"):
        find.cone_search(toy, 0, 0, 0)


def test_find_tries_exact_id_then_position_then_name_like(toy):
    assert find.find(toy, "obj00042").kind == "id"
    named = find.find(toy, "OBJ 42")
    assert named.kind == "name" and list(named.objects["object_id"]) == ["obj00042"]
    assert list(find.find(toy, "ngc4565").objects["object_id"]) == ["NGC 4565"]
    cone = find.find(toy, "12:36:20.76 +25:59:15.0", radius_arcsec=5)
    assert cone.kind == "cone" and cone.objects["object_id"].iloc[0] == "NGC 4565"
    assert cone.objects["separation_arcsec"].iloc[0] < 1.0
    partial = find.find(toy, "wrap")
    assert set(partial.objects["object_id"]) == {"wrap-east", "wrap-west"}
    empty = find.find(toy, "10.0 -80.0", radius_arcsec=5)
    assert empty.kind == "cone" and empty.objects.empty and "nothing within 5\"" in empty.message
    assert find.find(toy, "no-such-thing").kind == "none"


def test_nearest_in_plane_uses_every_point():
    frame = pd.DataFrame({"object_id": ["a", "b", "c"], "x": [0.0, 1.0, 5.0], "y": [0.0, 1.0, 5.0]})
    assert find.nearest_in_plane(frame, 0.9, 0.8)[0] == "b"
    assert find.nearest_in_plane(frame.iloc[:0], 0, 0) is None


def test_links_point_at_the_object_and_skyserver_only_for_sdss():
    ra, dec = 226.442734, 12.355612
    sdss = links.links_for(ra, dec, "sdss-demo")
    assert list(sdss) == ["Legacy Survey viewer", "SDSS SkyServer", "NED", "SIMBAD"]
    assert "SDSS SkyServer" not in links.links_for(ra, dec, "hubble-deep-field")
    legacy = parse_qs(urlsplit(sdss["Legacy Survey viewer"]).query)
    assert (legacy["ra"], legacy["dec"]) == (["226.442734"], ["12.355612"])
    assert parse_qs(urlsplit(sdss["SIMBAD"]).query)["Coord"] == ["226.442734 +12.355612"]
    ned = parse_qs(urlsplit(sdss["NED"]).query)
    assert (ned["ra"], ned["dec"]) == (["226.442734d"], ["+12.355612d"])
    assert links.links_for(float("nan"), dec, "sdss") == {}


def test_cutout_scale_bar_has_a_round_length_and_is_drawn():
    import io

    from PIL import Image

    from backend.imaging import bar_length_arcsec, with_scale_bar

    assert bar_length_arcsec(64, 0.262) == 5.0  # 30% of 16.8" is 5.0": the longest round length that fits
    assert bar_length_arcsec(256, 0.262) == 20.0
    dark = np.zeros((64, 64, 3))
    img = np.asarray(Image.open(io.BytesIO(with_scale_bar(dark, 0.262, 256))).convert("RGB"))
    row = img[int(0.92 * 256) + 1]
    lit = np.flatnonzero(row.min(axis=1) > 200)
    assert len(lit) == pytest.approx(5.0 / 0.262 * 256 / 64, abs=2)  # 5" at 0.262"/px, scaled 4x
