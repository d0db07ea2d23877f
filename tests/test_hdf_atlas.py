"""The Hubble Deep Field atlas: sep-detected sources in scikit-image's HDF image, one cutout each."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from embeddings.demo.hdf import CUTOUT, HDF_DEC, HDF_RA, build_hdf_atlas


@pytest.fixture(scope="module")
def hdf_atlas(tmp_path_factory):
    return build_hdf_atlas(str(tmp_path_factory.mktemp("hdf") / "hdf"), progress=False)


def test_hdf_atlas_has_detected_sources_with_cutouts_near_the_hdf(hdf_atlas):
    atlas = hdf_atlas
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


def test_builtin_image_encoders_embed_every_hdf_cutout_and_morphology_is_measured(hdf_atlas):
    from embeddings import morphology
    from embeddings.encoders.builtin import DEFAULT_WEIGHTS
    from embeddings.encoders.registry import get_encoder
    from embeddings.job import run_embedding
    from embeddings.pipeline import IMAGE_ENCODERS

    n = hdf_atlas.count("objects")
    for name in IMAGE_ENCODERS:  # the self-supervised morphology space and the aligned image space
        encoder = None if DEFAULT_WEIGHTS.is_file() else get_encoder(name, random_init=True)
        summary = run_embedding(hdf_atlas, name, encoder=encoder, device="cpu", workers=0, progress=False, index=False)
        assert summary.embedded == n and not summary.skipped, "f814w/f606w/f450w cutouts are no longer refused"
    measured = morphology.write_catalogue(hdf_atlas)
    assert measured["morph_gini"].notna().mean() > 0.9
    stored = hdf_atlas.objects(["object_id", *morphology.COLUMNS])
    assert stored["morph_asymmetry"].notna().sum() == measured["morph_asymmetry"].notna().sum()
