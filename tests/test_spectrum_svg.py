"""The Galaxy page's static spectra (backend/spectrum_svg.py): units, rest frame, line labels apart, gaps, overlay."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from backend.spectra import desi_wavelength, smooth_spectrum
from backend.spectrum_svg import Neighbour, neighbour_spectra_svg, spectrum_svg
from backend.svg_plot import LABEL_FONT, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
UNIT = "10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹"


def _spectrum(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wave = desi_wavelength()
    rng = np.random.default_rng(seed)
    flux = 5 + np.sin(wave / 300) + rng.normal(0, 0.3, wave.size)
    return wave, flux, np.full(wave.size, 10.0)


def _texts(svg: str) -> list[ET.Element]:
    return list(ET.fromstring(svg).iter(f"{SVG}text"))


def _labels(svg: str) -> list[tuple[str, float, float]]:
    """(name, x, y) of each line label: its anchor, the top end of the vertical text."""
    out = []
    for t in _texts(svg):
        if t.get("class") == "line":
            x, y = map(float, re.match(r"translate\(([-\d.]+),([-\d.]+)\)", t.get("transform")).groups())
            out.append((t.text, x, y))
    return out


def _tick_values(svg: str) -> list[float]:
    return [float(t.text) for t in _texts(svg) if t.get("class") == "tick" and t.get("text-anchor") == "middle"]


def test_spectrum_has_flux_units_and_the_rest_frame_divides_wavelengths_by_1_plus_z() -> None:
    wave, flux, ivar = _spectrum()
    z = 0.5
    observed = spectrum_svg(wave, flux, ivar, z, 9, False, UNIT)
    rest = spectrum_svg(wave, flux, ivar, z, 9, True, UNIT)
    assert f"flux ({UNIT})" in [t.text for t in _texts(observed)]
    assert "observed wavelength (Å)" in [t.text for t in _texts(observed)]
    assert "rest-frame wavelength (Å)" in [t.text for t in _texts(rest)]
    assert min(_tick_values(observed)) >= wave[0] and max(_tick_values(observed)) <= wave[-1]
    ticks = _tick_values(rest)
    assert wave[0] / (1 + z) <= min(ticks) and max(ticks) <= wave[-1] / (1 + z) and len(ticks) >= 4
    hb = {name: x for name, x, _ in _labels(observed)}["Hβ"], {name: x for name, x, _ in _labels(rest)}["Hβ"]
    assert abs(hb[0] - hb[1]) < 1.0, "a line sits at the same place in both frames: the axis moved, not the line"


def test_close_line_labels_do_not_overlap() -> None:
    wave, flux, ivar = _spectrum(1)
    labels = _labels(spectrum_svg(wave, flux, ivar, 0.05, 9, False, UNIT))  # [NII] Hα [NII] [SII] [SII] [OIII] ...
    assert len(labels) >= 12
    boxes = [(x - LABEL_FONT, x, y, y + 0.62 * LABEL_FONT * len(name)) for name, x, y in labels]  # text runs down
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2]
            assert apart, (labels, a, b)
    assert len({y for _, _, y in labels}) > 1, "labels are staggered"


def test_missing_pixels_break_the_curve_instead_of_bridging_it() -> None:
    wave, flux, ivar = _spectrum(2)
    ivar[3000:3400] = 0  # no valid pixel over 320 Å
    svg = spectrum_svg(wave, flux, ivar, 0.1, 5, False, UNIT)
    curve = next(p for p in ET.fromstring(svg).iter(f"{SVG}path") if p.get("class") == "flux")
    assert curve.get("d").count("M") == 2


def test_neighbour_overlay_draws_this_galaxy_under_each_neighbour_and_escapes_ids() -> None:
    wave, flux, ivar = _spectrum(3)
    neighbours = [Neighbour(f"obj-{i}", 0.1 * i, _spectrum(10 + i)[1], ivar) for i in range(5)]
    neighbours.append(Neighbour("<b>&co</b>", None, _spectrum(20)[1], ivar))
    svg = neighbour_spectra_svg(wave, (flux, ivar), neighbours, "me&you")
    root = ET.fromstring(svg)  # valid XML whatever the ids hold
    assert len([u for u in root.iter(f"{SVG}use") if u.get("class") == "query"]) == 6
    assert len([p for p in root.iter(f"{SVG}path") if p.get("class") == "neighbour"]) == 6
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "obj-3 z=0.300" in texts and "<b>&co</b>" in texts and "me&you (this galaxy)" in texts
    alone = ET.fromstring(neighbour_spectra_svg(wave, None, neighbours[:2], "x"))
    assert not list(alone.iter(f"{SVG}use")), "no query spectrum: nothing drawn under the neighbours"


def test_nice_ticks_are_round_and_inside_the_range() -> None:
    assert nice_ticks(3600, 9824, 8) == [4000.0, 5000.0, 6000.0, 7000.0, 8000.0, 9000.0]
    assert nice_ticks(0.13, 0.61, 5) == [0.2, 0.3, 0.4, 0.5, 0.6]
    assert nice_ticks(1.0, 1.0) == [1.0]


def test_a_short_or_empty_spectrum_still_gives_a_valid_image() -> None:
    wave = 3600 + np.arange(5.0)  # shorter than the smoothing window
    short = ET.fromstring(spectrum_svg(wave, np.ones(5), np.ones(5), 0.1, 51, False, UNIT))
    curve = next(p for p in short.iter(f"{SVG}path") if p.get("class") == "flux")
    assert curve.get("d").startswith("M") and len(curve.get("d").split()) == 10, "five points, each drawn once"
    empty = spectrum_svg(3600 + np.arange(100.0), np.full(100, np.nan), np.zeros(100), 0.1, 9, True, UNIT)
    assert "rest-frame wavelength (Å)" in [t.text for t in _texts(empty)] and "nan" not in empty


def test_smoothing_wider_than_the_spectrum_keeps_its_length_and_its_weighted_mean():
    flux = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ivar = np.array([1.0, 1.0, 0.0, 1.0, 1.0])  # the masked pixel carries no weight
    smoothed, error = smooth_spectrum(flux, ivar, 51)  # the Galaxy page's widest smoothing on a 5-pixel spectrum
    assert smoothed.shape == error.shape == flux.shape
    assert np.all(np.isfinite(smoothed))
    assert smoothed[2] == pytest.approx(3.0)  # the centre window spans all 5 pixels: (1 + 2 + 4 + 5) / 4


def test_line_plot_marks_each_point_with_whole_number_ticks_and_shows_a_single_point() -> None:
    from backend.svg_plot import line_svg

    found = np.array([0, 1, 1, 2, 3])
    svg = line_svg(np.arange(1, 6), found, title="Interesting found: 3 of 5 inspected", xlabel="inspected",
                   ylabel="found", integer=True)
    root = ET.fromstring(svg)
    points = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(f"{SVG}circle")]
    assert len(points) == 5 and [x for x, _ in points] == sorted(x for x, _ in points)
    assert points[0][1] > points[1][1] == points[2][1] > points[3][1] > points[4][1], "found rises up the plot"
    ticks = [t.text for t in _texts(svg) if t.get("class") == "tick"]
    assert ticks and all(t.lstrip("-").isdigit() for t in ticks), "counts: whole-number ticks only"
    one = ET.fromstring(line_svg(np.array([1]), np.array([1]), title="t", xlabel="x", ylabel="y", integer=True))
    (cx, cy), = [(float(c.get("cx")), float(c.get("cy"))) for c in one.iter(f"{SVG}circle")]
    assert 56 < cx < 600 - 16 and 30 < cy < 220 - 46, "a single labelled object is drawn inside the plot"
