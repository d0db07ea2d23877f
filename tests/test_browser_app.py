"""End to end in headless Chromium: the live app on a small demo atlas, driven like a user would."""

from __future__ import annotations

import re
import time

import pytest

from backend import tags
from backend.store import open_atlas
from tests.browser import (
    MAP,
    MAP_DRAWN_JS,
    NEIGHBOUR_IDS_JS,
    POINT_JS,
    map_plot_box,
    map_to_data,
    open_map,
    screenshot,
    shown_space,
    wait_app_idle,
)

pytestmark = pytest.mark.browser

def test_map_click_opens_the_galaxy_with_neighbour_thumbnails(app_url: tuple[str, str], page: object) -> None:
    url, _ = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(POINT_JS, timeout=120_000)
    wait_app_idle(page)
    drawn = page.evaluate(f"() => document.querySelector(\"{MAP}\").__arp.data.bg.startsWith('data:image/png')")
    assert drawn, "the datashader background image is missing"
    assert page.locator(".js-plotly-plot").count() == 0, "the map loads no Plotly"
    page.locator(MAP).scroll_into_view_if_needed()
    time.sleep(0.5)
    screenshot(page, "map")
    point = page.evaluate(POINT_JS)
    page.mouse.move(point["x"] - 4, point["y"])
    page.mouse.move(point["x"], point["y"])
    time.sleep(0.3)
    page.mouse.click(point["x"], point["y"])
    page.get_by_role("heading", name=f"Galaxy {point['id']}").wait_for(timeout=120_000)
    assert f"object={point['id']}" in page.url
    page.wait_for_function(f"() => ({NEIGHBOUR_IDS_JS})().length >= 12", timeout=120_000)  # 12 thumbnails drawn
    cutout = page.locator("[data-testid='stMain'] [data-testid='stImage'] img").first
    try:  # drawn late on a slow machine: once, in CI, not yet there when the neighbours' thumbnails were
        cutout.wait_for(timeout=60_000)
    except Exception as err:
        left = page.locator("[data-testid='stMain'] [data-testid='stColumn']").first.inner_text()[:500]
        raise AssertionError(f"the galaxy's cutout is not drawn; the left column shows: {left!r}") from err
    assert page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=cutout.element_handle(), timeout=60_000)
    assert point["id"] not in page.evaluate(NEIGHBOUR_IDS_JS)
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


def _selected(page: object) -> int:
    """The count in the Selection heading, once it shows one or more objects."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('h2, h3')].some(h => /Selection: [1-9]/.test(h.innerText))",
        timeout=120_000,
    )
    return int(page.get_by_role("heading", name="Selection:").inner_text().split(":")[1].split()[0].replace(",", ""))


def _stored_map(page: object, uri: str):
    """The stored UMAP map of the space the page draws (every object, not only the hover sample)."""
    from backend import maps
    from backend.spaces import list_spaces

    atlas = open_atlas(uri)
    return maps.load_map(atlas, shown_space(page, list(list_spaces(atlas))))


def test_box_select_on_the_map_selects_every_object_inside(app_url: tuple[str, str], page: object) -> None:
    from backend import render

    url, uri = app_url
    area = open_map(page, url)
    page.get_by_test_id("arp-map-mode-box").click()
    x0, y0 = area["x"] + 0.15 * area["width"], area["y"] + 0.15 * area["height"]
    x1, y1 = area["x"] + 0.75 * area["width"], area["y"] + 0.85 * area["height"]
    # The box in data coordinates, read before the drag: the gallery drawn after it can add a scrollbar that
    # narrows the map, and every object of the stored map inside the box is counted (not only the hover sample).
    (ax, ay), (bx, by) = map_to_data(page, [(x0, y0), (x1, y1)])
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    shown = _selected(page)
    expected = len(render.points_in_box(_stored_map(page, uri), (ax, bx), (ay, by)))
    assert shown > 0 and abs(shown - expected) <= 1, (shown, expected)
    page.get_by_text("Send to TOPCAT/Aladin").first.wait_for(timeout=30_000)  # the selection can be taken away
    wait_app_idle(page)
    assert page.evaluate(f"() => Number(document.querySelector(\"{MAP}\").dataset.selected)") == shown, "drawn red"
    screenshot(page, "map_box_selection")
    card = page.locator(".st-key-selection_cards [data-testid='arp-card']").first  # the gallery's first card opens
    oid = card.get_attribute("data-object-id")
    card.get_by_test_id("arp-card-open").click()
    page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=60_000)


def test_lasso_on_the_map_selects_every_object_inside(app_url: tuple[str, str], page: object) -> None:
    from backend import render

    url, uri = app_url
    area = open_map(page, url)
    page.get_by_test_id("arp-map-mode-lasso").click()
    corners = [(0.1, 0.1), (0.9, 0.2), (0.6, 0.9), (0.15, 0.7)]  # a quadrilateral, not a box
    pixels = [(area["x"] + fx * area["width"], area["y"] + fy * area["height"]) for fx, fy in corners]
    polygon = map_to_data(page, pixels)
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for x, y in [*pixels[1:], pixels[0]]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    shown = _selected(page)
    frame = _stored_map(page, uri)
    expected = len(render.points_in_polygon(frame, polygon))
    xs, ys = zip(*polygon, strict=True)
    in_box = len(render.points_in_box(frame, (min(xs), max(xs)), (min(ys), max(ys))))
    assert shown > 0 and abs(shown - expected) <= 1 and expected < in_box, (shown, expected, in_box)
    screenshot(page, "map_lasso_selection")


# True once a map point has kept its place on the page over three polls in a row (a rerun can still move the map,
# or redraw it with another plot box).
STILL_JS = """([sel, x, y]) => { const p = document.querySelector(sel).arpToPage(x, y), k = p.x + "," + p.y;
  const w = window.__arpStill || (window.__arpStill = {k: "", n: 0}); w.n = w.k === k ? w.n + 1 : 0; w.k = k; return w.n >= 3; }"""


def test_a_click_opens_the_object_under_the_cursor_outside_the_hover_sample(app_url: tuple[str, str],
                                                                          page: object) -> None:
    import numpy as np

    url, uri = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    hover = page.get_by_role("spinbutton", name="Hover points")
    hover.fill("100")  # fewer hover points than objects: most objects are only in the background image
    hover.press("Enter")
    page.wait_for_function(f"() => Number(document.querySelector(\"{MAP}\").dataset.points) === 100", timeout=120_000)
    wait_app_idle(page)
    page.locator(MAP).scroll_into_view_if_needed()
    sample = set(page.evaluate(f"() => document.querySelector(\"{MAP}\").__arp.data.ids"))
    frame = _stored_map(page, uri)
    pixels = np.array([[p["x"], p["y"]] for p in page.evaluate(
        f"(xy) => xy.map(([x, y]) => document.querySelector(\"{MAP}\").arpToPage(x, y))",
        frame[["x", "y"]].to_numpy().tolist())])
    gaps = np.linalg.norm(pixels[:, None] - pixels[None], axis=2) + np.eye(len(pixels)) * 1e9
    outside = np.flatnonzero(~frame["object_id"].isin(sample).to_numpy())
    target = outside[np.argmax(gaps[outside].min(1))]  # the most isolated object outside the hover sample
    oid = str(frame["object_id"].iloc[target])
    assert gaps[target].min() > 12, "an object with no other within the click tolerance"
    area = map_plot_box(page)  # a click far from every object opens nothing and says so
    empty = max(((area["x"] + fx * area["width"], area["y"] + fy * area["height"]) for fx in np.linspace(0.02, 0.98, 25)
                 for fy in np.linspace(0.02, 0.98, 25)), key=lambda p: np.linalg.norm(pixels - p, axis=1).min())
    assert np.linalg.norm(pixels - empty, axis=1).min() > 12
    page.mouse.click(*empty)
    page.get_by_text("No object within 8 px of your click").wait_for(timeout=60_000)
    wait_app_idle(page)
    assert page.locator("h1").first.inner_text() == "Map"
    page.evaluate(f"() => document.querySelector(\"{MAP}\").scrollIntoView({{block: 'center'}})")  # the notice moved it
    x, y = frame[["x", "y"]].iloc[target].tolist()
    page.wait_for_function(STILL_JS, arg=[MAP, x, y], polling=150, timeout=30_000)  # the rerun's layout has settled
    spot = page.evaluate(f"([x, y]) => document.querySelector(\"{MAP}\").arpToPage(x, y)", [x, y])
    page.mouse.click(spot["x"] + 5, spot["y"])  # 5 px beside it: it opens, and the page says so
    page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=120_000)
    notice = page.locator("[data-testid='stAlert']", has_text=f"Opened {oid}, the object nearest to your click")
    notice.wait_for(timeout=30_000)
    away = int(re.search(r"\((\d+) px away\)", notice.inner_text()).group(1))
    # 5 px as clicked; in the full suite (two workers) the page has still shifted by 2-3 px at the click, so the
    # bound is the open radius: past 3 px it must say what it opened, and it never opens beyond 8 px
    assert 3 < away <= 8, notice.inner_text()
    screenshot(page, "map_click_outside_sample")
