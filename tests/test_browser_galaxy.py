"""The Galaxy and Map pages in headless Chromium: opening a neighbour, the atlas field on a page opened by its URL,
the thumbnail shown on map hover, two recolours in a row, and a drag that zooms the map."""

from __future__ import annotations

import base64

import pytest

from backend.store import open_atlas
from tests.browser import (
    BACKGROUND_JS,
    MAP,
    MAP_DRAWN_JS,
    NEIGHBOUR_IDS_JS,
    POINT_JS,
    map_to_data,
    open_map,
    pick_option,
    screenshot,
    wait_app_idle,
)

pytestmark = pytest.mark.browser

@pytest.mark.parametrize("path", ["galaxy?object={oid}", "galaxy?id={oid}", "map", "rare"])  # first: a fresh server
def test_the_atlas_field_shows_the_atlas_on_a_page_opened_by_its_url(app_url: tuple[str, str], page: object,
                                                                     path: str) -> None:
    url, uri = app_url
    oid = open_atlas(uri).objects(["object_id"], limit=2)["object_id"].iloc[1]  # not the fallback: the first
    page.goto(f"{url}/{path.format(oid=oid)}")
    page.locator("h1").first.wait_for(timeout=120_000)
    wait_app_idle(page)
    field = page.get_by_role("textbox", name="Atlas folder or URI")
    field.wait_for(timeout=30_000)
    assert field.input_value() == uri
    if path.startswith("galaxy"):
        assert page.locator("h1").first.inner_text() == f"Galaxy {oid}" and f"object={oid}" in page.url


def test_open_a_neighbour_moves_the_page_and_its_url(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    oid = open_atlas(uri).objects(["object_id"], limit=3)["object_id"].iloc[2]
    page.goto(f"{url}/galaxy?object={oid}")
    page.wait_for_function(f"() => ({NEIGHBOUR_IDS_JS})().length >= 12", timeout=120_000)
    wait_app_idle(page)
    target = page.evaluate(NEIGHBOUR_IDS_JS)[0]
    page.locator(f".st-key-neighbour_cards [data-object-id='{target}'] [data-testid='arp-card-open']").click()
    page.get_by_role("heading", name=f"Galaxy {target}").wait_for(timeout=60_000)
    page.wait_for_function(f"() => !({NEIGHBOUR_IDS_JS})().includes({target!r}) && ({NEIGHBOUR_IDS_JS})().length >= 12",
                           timeout=60_000)
    assert f"object={target}" in page.url
    page.reload()  # the URL is the shareable state: it reopens the neighbour
    page.get_by_role("heading", name=f"Galaxy {target}").wait_for(timeout=60_000)
    wait_app_idle(page)
    screenshot(page, "galaxy_after_neighbour_click")


CARD_JS = """() => {
  const card = document.getElementById('arp-hover-card'), img = card && card.querySelector('img');
  if (!card || card.style.display === 'none' || !img || !img.complete || !img.naturalWidth) return null;
  return {id: img.dataset.id, src: img.getAttribute('src'), text: card.innerText};
}"""


def test_hovering_a_map_point_shows_its_thumbnail_and_a_click_still_opens_it(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    open_map(page, url)
    page.wait_for_timeout(500)
    point = page.evaluate(POINT_JS)
    page.mouse.move(point["x"] - 40, point["y"] - 40)
    page.mouse.move(point["x"], point["y"])
    card = page.wait_for_function(CARD_JS, timeout=60_000).json_value()
    assert card["id"] == point["id"], "the card shows the object under the cursor"
    stored = open_atlas(uri).get_objects([card["id"]], ["thumbnail"])["thumbnail"].iloc[0]
    assert card["src"] == "data:image/png;base64," + base64.b64encode(bytes(stored)).decode()
    assert card["id"] in card["text"]
    screenshot(page, "map_hover", docs=True)
    page.mouse.click(point["x"], point["y"])  # hovering left the map's own click alone
    page.get_by_role("heading", name=f"Galaxy {card['id']}").wait_for(timeout=120_000)
    assert not page.locator("#arp-hover-card").is_visible(), "the card goes with the map"


@pytest.mark.flaky(reruns=3, reruns_delay=2)  # intermittent in 1 of 3 fresh-clone runs (both tries): open in issue 10
def test_two_recolours_in_a_row_both_redraw_the_map(app_url: tuple[str, str], page: object) -> None:
    url, _ = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    for column in ("redshift", "rare_class"):  # the second pick used to be lost (the box became a new widget)
        before = page.evaluate(BACKGROUND_JS)
        pick_option(page, "Colour by", column)
        page.wait_for_function(f"(b) => ({BACKGROUND_JS})() !== b", arg=before, timeout=120_000)
        wait_app_idle(page)
    legend = page.get_by_test_id("arp-map-legend").locator(".arp-map-key-title").inner_text()
    assert legend == "rare_class", "the map shows the second pick"


def test_a_drag_in_zoom_mode_zooms_the_map_and_reset_view_undoes_it(app_url: tuple[str, str], page: object) -> None:
    area = open_map(page, app_url[0])
    extent = "() => { const d = document.querySelector(\"" + MAP + "\").__arp.data; return [d.x, d.y]; }"
    full = page.evaluate(extent)
    a = (area["x"] + 0.3 * area["width"], area["y"] + 0.3 * area["height"])
    b = (area["x"] + 0.6 * area["width"], area["y"] + 0.7 * area["height"])
    (ax, ay), (bx, by) = map_to_data(page, [a, b])
    before = page.evaluate(BACKGROUND_JS)
    assert page.get_by_test_id("arp-map-mode-zoom").get_attribute("aria-pressed") == "true", "Zoom is the default mode"
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=6)
    page.mouse.up()
    page.wait_for_function(f"(b) => ({BACKGROUND_JS})() !== b", arg=before, timeout=120_000)  # re-rendered by the server
    wait_app_idle(page)
    (x0, x1), (y0, y1) = page.evaluate(extent)
    # the drawn extent and this test's own pixel -> data conversion differ by float rounding (~1e-7 of the map's
    # width; a CI run saw 4e-7 at x = 0.0165): compare to a millionth of the width, not relatively to a corner near 0
    wx, wy = full[0][1] - full[0][0], full[1][1] - full[1][0]
    assert (x0, x1) == pytest.approx((ax, bx), abs=1e-6 * wx) and (y0, y1) == pytest.approx((by, ay), abs=1e-6 * wy)
    page.get_by_role("button", name="Reset view").click()
    page.wait_for_function(f"(f) => JSON.stringify(({extent})()) === JSON.stringify(f)", arg=full, timeout=120_000)
