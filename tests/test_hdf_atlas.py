"""The Hubble Deep Field atlas: sep-detected sources in scikit-image's HDF image, one cutout each."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord

from embeddings.demo.hdf import CUTOUT, HDF_DEC, HDF_RA, build_hdf_atlas


def test_hdf_atlas_has_detected_sources_with_cutouts_near_the_hdf(tmp_path):
    atlas = build_hdf_atlas(str(tmp_path / "hdf"), progress=False)
    frame = atlas.objects()
    assert len(frame) > 20 and frame["object_id"].is_unique
    meta = atlas.surveys()["hubble-deep-field"]
    assert meta["image_shape"] == [3, CUTOUT, CUTOUT] and len(meta["bands"]) == 3
    assert "wavelength" not in meta
    for shape, image in zip(frame["image_shape"], frame["image"], strict=True):
        assert list(shape) == [3, CUTOUT, CUTOUT] and len(image) == 3 * CUTOUT * CUTOUT
    assert frame["spectrum_flux"].isna().all()
    # each cutout is centred on its source: the centre is brighter than the cutout's median
    cubes = np.stack([np.asarray(img).reshape(3, CUTOUT, CUTOUT) for img in frame["image"]])
    centre = cubes[:, :, CUTOUT // 2 - 2 : CUTOUT // 2 + 2, CUTOUT // 2 - 2 : CUTOUT // 2 + 2].mean(axis=(1, 2, 3))
    assert np.mean(centre > np.median(cubes, axis=(1, 2, 3))) > 0.95
    sep = SkyCoord(frame["ra"].to_numpy() * u.deg, frame["dec"].to_numpy() * u.deg).separation(
        SkyCoord(HDF_RA * u.deg, HDF_DEC * u.deg))
    assert sep.max() < 40 * u.arcsec  # the 1000 x 872 px image spans ~40" x 35" at 0.04"/px
    assert sep.min() < 2 * u.arcsec
