"""Morphology parameters (Gini, M20, concentration, asymmetry, ...) behave as their definitions say on known stamps."""

from __future__ import annotations

import numpy as np

from embeddings import morphology


def _blob(size: int, y: float, x: float, r: float, flux: float, n: float = 1.0) -> np.ndarray:
    """A Sersic profile of index n and half-light radius r (pixels), peak `flux`."""
    yy, xx = np.indices((size, size))
    rr = np.hypot(yy - y, xx - x)
    b = 2.0 * n - 1.0 / 3.0
    return flux * np.exp(-b * (rr / r) ** (1.0 / n))


def _noisy(img: np.ndarray, seed: int = 0) -> np.ndarray:
    return img + np.random.default_rng(seed).normal(0, 0.01, img.shape)


def _three_bands(fluxes: tuple[float, float, float], seed: int) -> np.ndarray:
    """The same disk galaxy in three bands at the given relative fluxes, with noise."""
    galaxy = _blob(64, 31.5, 31.5, 4.0, 1.0)
    return _noisy(np.stack([f * galaxy for f in fluxes]), seed)


def _ring(radius: float = 8.0, width: float = 1.5) -> np.ndarray:
    return np.exp(-0.5 * ((np.hypot(*(np.indices((64, 64)) - 31.5)) - radius) / width) ** 2)


def test_a_symmetric_galaxy_is_less_asymmetric_than_a_pair():
    single = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 3.0, 1.0)))
    pair = morphology.measure(_noisy(_blob(64, 31.5, 28, 3.0, 1.0) + _blob(64, 31.5, 40, 2.0, 0.6)))
    assert single.asymmetry < 0.05 < pair.asymmetry
    assert pair.m20 > single.m20  # the bright 20% is spread over two nuclei
    assert single.shape_asymmetry < pair.shape_asymmetry


def test_a_concentrated_profile_has_higher_concentration_and_gini_than_a_disk():
    compact = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 4.0, 5000.0, n=4.0)))
    disk = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 4.0, 1.0, n=1.0)))
    assert compact.concentration > disk.concentration
    assert compact.gini > disk.gini


def test_elongated_galaxies_have_ellipticity_and_radius_scales_with_pixels():
    yy, xx = np.indices((64, 64))
    edge_on = np.exp(-np.hypot((yy - 31.5) / 1.5, (xx - 31.5) / 6.0))
    m = morphology.measure(_noisy(np.stack([edge_on, edge_on, edge_on])), pixel_scale=0.262)
    assert m.ellipticity > 0.5
    round_one = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 3.0, 1.0)), pixel_scale=0.5)
    same_in_pixels = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 3.0, 1.0)), pixel_scale=1.0)
    assert np.isclose(same_in_pixels.r50, 2 * round_one.r50)


def test_an_empty_stamp_gives_nan_not_an_error():
    m = morphology.measure(np.random.default_rng(0).normal(0, 1, (64, 64)) * 0)
    assert all(np.isnan(v) for v in m.as_row().values())


def test_colour_dispersion_is_zero_for_matching_bands_and_high_for_a_feature_in_one_band():
    same = _three_bands((0.5, 1.0, 1.5), seed=1)
    assert abs(morphology.measure(same).colour_dispersion) < 0.02
    ring_in_g = same.copy()
    ring_in_g[0] += 0.1 * _ring()  # a blue ring
    trail = same.copy()
    trail[2, :, 20] += 0.5  # a bad column in one band
    assert morphology.measure(ring_in_g).colour_dispersion > 0.05
    assert morphology.measure(trail).colour_dispersion > 0.05
    assert np.isnan(morphology.measure(same[1]).colour_dispersion)  # one band


def test_asymmetry_range_is_zero_for_matching_bands_and_high_when_one_band_breaks_the_symmetry():
    same = _three_bands((0.5, 1.0, 1.5), seed=2)
    assert abs(morphology.measure(same).asymmetry_range) < 0.05
    clump_in_g = same.copy()
    clump_in_g[0] += _blob(64, 31.5, 38.0, 2.0, 0.5)  # an off-centre knot seen in one band only
    column_in_z = same.copy()
    column_in_z[2, :, 34] += 0.5  # a bad column in one band
    assert morphology.measure(clump_in_g).asymmetry_range > 0.1
    assert morphology.measure(column_in_z).asymmetry_range > 0.1
    ring_everywhere = same + 0.1 * _ring()
    assert abs(morphology.measure(ring_everywhere).asymmetry_range) < 0.05  # symmetric in every band


def test_asymmetry_range_leaves_out_undetected_bands_and_single_band_cutouts():
    with_empty_band = _three_bands((0.0, 1.0, 1.5), seed=3)
    assert abs(morphology.measure(with_empty_band).asymmetry_range) < 0.05  # the pure-noise band is not counted
    only_one = _three_bands((0.0, 0.0, 1.0), seed=4)
    assert np.isnan(morphology.measure(only_one).asymmetry_range)
    assert np.isnan(morphology.measure(only_one[2]).asymmetry_range)  # a single-band cutout


def test_sersic_index_recovers_the_profile_of_round_and_flattened_galaxies():
    for n in (1.0, 2.0, 4.0):
        bright = np.exp(2.0 * n - 1.0 / 3.0)  # surface brightness 1 at the half-light radius
        round_one = morphology.measure(_noisy(_blob(64, 31.5, 31.5, 6.0, bright, n=n)))
        assert abs(round_one.sersic_n - n) < 0.15 * n
    yy, xx = np.indices((64, 64))
    flat_disk = np.exp(-1.678 * np.hypot((yy - 31.5) / 0.4, xx - 31.5) / 6.0)  # an exponential disk seen at q = 0.4
    assert abs(morphology.measure(_noisy(flat_disk)).sersic_n - 1.0) < 0.15  # circular annuli would give 1.5


def test_colour_gradient_is_negative_for_a_red_bulge_in_a_blue_disk_and_zero_for_one_colour():
    bulge = _blob(64, 31.5, 31.5, 2.0, 2000.0, n=4.0)
    disk = _blob(64, 31.5, 31.5, 8.0, 0.2, n=1.0)
    spiral = _noisy(np.stack([0.3 * bulge + disk, 0.6 * bulge + disk, 1.0 * bulge + disk]))  # g, r, z
    assert morphology.measure(spiral).colour_gradient < -0.3  # the outskirts are bluer in g - z
    one_colour = _three_bands((0.5, 1.0, 1.5), seed=2)
    assert abs(morphology.measure(one_colour).colour_gradient) < 0.05
    assert np.isnan(morphology.measure(one_colour[1]).colour_gradient)  # a single band
