"""End to end in headless Chromium: the live app on a small demo atlas, driven like a user would."""

from __future__ import annotations

import time

import pytest

from backend import tags
from backend.store import open_atlas
from tests.browser import POINT_JS, screenshot, wait_app_idle

pytestmark = pytest.mark.browser

def test_map_click_opens_the_galaxy_with_neighbour_thumbnails(app_url: tuple[str, str], page: object) -> None:
    url, _ = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(POINT_JS, timeout=120_000)
    wait_app_idle(page)
    assert page.locator(".js-plotly-plot image").count() >= 1, "the datashader background image is missing"
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    time.sleep(0.5)
    screenshot(page, "map")
    point = page.evaluate(POINT_JS)
    page.mouse.move(point["x"] - 4, point["y"])
    page.mouse.move(point["x"], point["y"])
    time.sleep(0.3)
    page.mouse.click(point["x"], point["y"])
    page.get_by_role("heading", name=f"Galaxy {point['id']}").wait_for(timeout=120_000)
    assert f"object={point['id']}" in page.url
    neighbours = page.locator("[data-testid='stMain'] [data-testid='stImage'] img")
    page.wait_for_function(
        "() => document.querySelectorAll(\"[data-testid='stMain'] [data-testid='stImage'] img\").length >= 13",
        timeout=120_000,
    )
    assert neighbours.count() >= 13  # the galaxy's composite + 12 neighbour thumbnails
    wait_app_idle(page)
    screenshot(page, "map_click_galaxy")


def _open_galaxy(app_url: tuple[str, str], page: object, index: int) -> tuple[str, str]:
    """Open the galaxy page of the atlas's index-th object via its deep link; returns (url, object_id)."""
    url, uri = app_url
    oid = open_atlas(uri).objects(["object_id"], limit=index + 1)["object_id"].iloc[index]
    page.goto(f"{url}/galaxy?object={oid}")
    page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=120_000)
    wait_app_idle(page)
    return url, oid


def test_image_to_spectrum_shows_neighbour_spectra(app_url: tuple[str, str], page: object) -> None:
    url, oid = _open_galaxy(app_url, page, 2)
    page.get_by_role("radio", name="image → spectrum").click()
    page.get_by_text("image → spectrum: query").wait_for(timeout=120_000)
    svg = ".st-key-neighbour_spectra_svg img[src^='data:image/svg']"  # not the thumbnails a rerun may still show there
    page.locator(svg).wait_for(timeout=60_000)
    wait_app_idle(page)
    overlay = page.evaluate(f"() => atob(document.querySelector(\"{svg}\").src.split(',')[1])")
    assert overlay.count('class="neighbour"') == 12 and overlay.count('class="query"') == 12
    drawn = page.evaluate("() => [...document.querySelectorAll('[data-testid=stMain] img')].filter(i => i.src.startsWith("
                          "'data:image/svg') && i.complete && i.naturalWidth > 0).length")
    assert drawn == 2, "the spectrum and the neighbours' spectra are drawn as images"
    assert page.locator(".js-plotly-plot").count() == 0, "no Plotly on the Galaxy page until the user asks to zoom"
    page.locator(".st-key-spectrum_interactive label").first.click()
    page.get_by_text("Neighbour spectra").first.wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=120_000)
    wait_app_idle(page)
    traces = page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd.layout && gd.layout.title"
        " && gd.layout.title.text ? [gd.layout.title.text, gd.data.filter(t => !(t.name || '').endsWith('(this galaxy)')).length]"
        " : null).filter(Boolean)"
    )
    spectra = [n for title, n in traces if "Neighbour spectra" in title]
    assert spectra and spectra[0] == 12, traces  # 12 neighbours (each drawn over this galaxy's spectrum in grey)
    screenshot(page, "galaxy_image_to_spectrum")


def test_tag_persists_across_a_page_reload(app_url: tuple[str, str], page: object) -> None:
    url, oid = _open_galaxy(app_url, page, 5)
    page.locator(".st-key-galaxy_tag_lens button").first.click()  # its label also shows the shortcut key
    page.get_by_text("Tags: lens").wait_for(timeout=60_000)
    page.reload()
    page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=120_000)
    page.get_by_text("Tags: lens").wait_for(timeout=60_000)
    assert "lens" in tags.tags_of(open_atlas(app_url[1]), oid)
    screenshot(page, "galaxy_tagged")


def test_probe_job_launched_from_the_page_reaches_done_with_metrics(app_url: tuple[str, str], page: object) -> None:
    url, _ = app_url
    page.goto(f"{url}/probes")
    page.get_by_role("button", name="Train probe").wait_for(timeout=120_000)
    wait_app_idle(page)
    page.get_by_role("button", name="Train probe").click()  # defaults: first space, redshift, kNN
    page.get_by_text("Probe job").wait_for(timeout=60_000)
    page.locator("strong", has_text="done").wait_for(timeout=240_000)
    page.locator("[data-testid='stMetric']", has_text="r2").wait_for(timeout=60_000)
    page.get_by_text("Predicted vs true").wait_for(timeout=60_000)
    wait_app_idle(page)
    screenshot(page, "probes_done")


def test_box_select_on_the_map_selects_every_object_inside(app_url: tuple[str, str], page: object) -> None:
    from backend import maps, render
    from backend.spaces import list_spaces

    url, uri = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(POINT_JS, timeout=120_000)
    wait_app_idle(page)
    plot = page.locator(".js-plotly-plot").first
    plot.scroll_into_view_if_needed()
    plot.hover()
    page.locator(".js-plotly-plot .modebar-btn[data-title='Box Select']").first.click()
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    x0, y0 = area["x"] + 0.15 * area["width"], area["y"] + 0.15 * area["height"]
    x1, y1 = area["x"] + 0.75 * area["width"], area["y"] + 0.85 * area["height"]
    # The box in data coordinates, read before the drag: the gallery drawn after it can add a scrollbar that
    # narrows the chart, and every object of the stored map inside the box is counted (not only the drawn sample).
    xs, ys = page.evaluate(
        """([a, b, c, d]) => { const gd = document.querySelector('.js-plotly-plot');
             const fl = gd._fullLayout; return [[fl.xaxis.p2l(a), fl.xaxis.p2l(c)], [fl.yaxis.p2l(b), fl.yaxis.p2l(d)]]; }""",
        [x0 - area["x"], y0 - area["y"], x1 - area["x"], y1 - area["y"]],
    )
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    heading = page.get_by_role("heading", name="Selection:")
    page.wait_for_function(
        "() => [...document.querySelectorAll('h2, h3')].some(h => /Selection: [1-9]/.test(h.innerText))",
        timeout=120_000,
    )
    shown = int(heading.inner_text().split(":")[1].split()[0].replace(",", ""))
    atlas = open_atlas(uri)
    shown_space = page.evaluate(
        """() => [...document.querySelectorAll("[data-testid='stSelectbox']")].filter(e => e.innerText.includes('Space'))
                 .map(e => (e.querySelector('[data-baseweb=select]') || e).textContent
                            + ' ' + ((e.querySelector('input') || {}).value || '')).join(' ')"""
    )
    space = max((s for s in list_spaces(atlas) if s in shown_space), key=len)  # the space the page draws
    expected = len(render.points_in_box(maps.load_map(atlas, space), tuple(xs), tuple(ys)))
    assert shown > 0 and abs(shown - expected) <= 1, (shown, expected)
    page.get_by_text("Send to TOPCAT/Aladin").first.wait_for(timeout=30_000)  # the selection can be taken away
    screenshot(page, "map_box_selection")
