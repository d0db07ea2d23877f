"""The workbench in headless Chromium: every page by its own URL (screenshots into docs/screenshots/browser/), the Find
box, links out, Rare cards (votes that keep their tab and show, the tag bar, Open), and the map's categorical
legend."""

from __future__ import annotations

import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from playwright.sync_api import expect

from backend import tags
from backend.spaces import list_spaces
from backend.store import open_atlas
from tests.browser import CARDS_DRAWN_JS, MAP_DRAWN_JS, pick_option, screenshot, wait_app_idle

pytestmark = pytest.mark.browser

PAGES = ["home", "map", "galaxy", "rare", "probes", "jobs", "data"]
NOT_FOUND_JS = "() => document.body.innerText.includes('Page not found')"


def test_every_page_opens_by_its_own_url(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    oid = open_atlas(uri).objects(["object_id"], limit=1)["object_id"].iloc[0]
    elsewhere: list[str] = []  # the app works offline and tells no third party who looks at what
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith((url, "data:", "blob:", "about:")) else None)
    for name in PAGES:
        page.goto(f"{url}/{name}" + (f"?object={oid}" if name == "galaxy" else ""))
        page.locator("h1").first.wait_for(timeout=120_000)
        wait_app_idle(page)
        if name == "map":
            page.wait_for_function(MAP_DRAWN_JS, timeout=120_000)
        page.wait_for_timeout(800)
        assert not page.evaluate(NOT_FOUND_JS), f"/{name} shows 'Page not found'"
        assert not page.locator("[data-testid='stException']").count(), f"/{name} raised"
        assert page.locator("h1").count() == 1, f"/{name} drew its title more than once"
        screenshot(page, name, docs=True)
    assert not elsewhere, f"pages asked other hosts: {sorted(set(elsewhere))[:3]}"
    page.goto(f"{url}/home")
    page.get_by_role("heading", name="Arp").first.wait_for(timeout=60_000)
    wait_app_idle(page)
    page.get_by_text("Where to start").wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="Arp").count() == 1, "the page is drawn once, not twice"
    page.get_by_text("Open a random galaxy").wait_for(timeout=60_000)
    spaces = page.locator("table.arp-table").filter(has_text="encoder")  # escaped HTML, not a data grid
    header = spaces.locator("thead th").all_inner_texts()
    names = spaces.locator("tbody tr").evaluate_all("rows => rows.map(r => r.cells[0].innerText)")
    assert header[:2] == ["space", "encoder"] and set(names) == set(list_spaces(open_atlas(uri)))
    assert not page.locator("[data-testid='stMain'] [data-testid='stDataFrame']").count()


def test_find_box_then_links_out(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    row = open_atlas(uri).objects(["object_id", "ra", "dec"], limit=2).iloc[1]
    page.goto(f"{url}/data")
    wait_app_idle(page)
    box = page.get_by_placeholder("id, name or RA Dec")
    box.fill(f"SDSS {int(row['object_id'].split('-')[1])}")
    box.press("Enter")
    page.get_by_role("heading", name=f"Galaxy {row['object_id']}").wait_for(timeout=120_000)
    wait_app_idle(page)
    legacy = page.get_by_role("link", name="Legacy Survey viewer")
    assert f"ra={row['ra']:.6f}" in legacy.get_attribute("href")
    assert page.get_by_role("link", name="SIMBAD").count() == 1 and page.get_by_role("link", name="NED").count() == 1
    degrees = f"{row['ra']:.6f} {row['dec']:+.6f}"
    page.get_by_text(degrees).first.wait_for(timeout=60_000)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.get_by_role("button", name=f"Copy {degrees}").click()  # the coordinates' copy button
    assert page.evaluate("() => navigator.clipboard.readText()") == degrees
    screenshot(page, "galaxy_links", docs=True)
    # take it away: the neighbours as a VOTable, the cutout as FITS with a WCS on the object
    page.get_by_role("button", name="Take these neighbours away").click()  # the export panel opens in a popover
    with page.expect_download() as got:
        page.locator(".st-key-neighbours_export_download button").click()
    table = Table.read(got.value.path(), format="votable")
    assert len(table) == 12 and str(table["ra"].unit) == "deg" and "similarity" in table.colnames
    with page.expect_download() as got:
        page.locator(".st-key-cutout_fits button").click()
    with fits.open(got.value.path()) as hdul:
        centre = WCS(hdul[0].header).celestial.pixel_to_world((hdul[0].data.shape[2] - 1) / 2, (hdul[0].data.shape[1] - 1) / 2)
    assert centre.ra.deg == pytest.approx(row["ra"], abs=1e-6) and centre.dec.deg == pytest.approx(row["dec"], abs=1e-6)


def test_rare_cards_vote_tag_and_open(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    page.goto(f"{url}/rare")
    page.wait_for_function(CARDS_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    first = page.locator("[class*='st-key-cards_cl'] [data-testid='arp-cards']").first  # the open tab: rare clusters
    row = first.locator("[data-testid='arp-card']").evaluate_all(
        "cs => cs.map(c => [Math.round(c.getBoundingClientRect().top), c.querySelector('img').naturalWidth])")
    assert len(row) == 6 and len({top for top, _ in row}) == 1, "six exemplars, side by side"
    assert all(width > 0 for _, width in row), "each card shows its thumbnail"
    card = first.locator("[data-testid='arp-card']").first
    for kind in ("up", "down", "tag"):  # icons drawn as inline SVG, not emoji or an icon font
        button = card.get_by_test_id(f"arp-card-{kind}")
        assert button.locator("svg path").count() >= 1 and not button.inner_text().strip()
    assert card.get_by_test_id("arp-card-open").inner_text() == "Open"
    page.get_by_role("button", name="Take a cluster away").click()  # opening it reruns the page to read the members
    download = page.locator(".st-key-cluster_export_download button")
    download.wait_for(timeout=120_000)
    assert "Download" in download.inner_text() and "(votable)" in download.inner_text(), download.inner_text()
    page.keyboard.press("Escape")
    wait_app_idle(page)

    page.get_by_role("tab", name="Anomalies").click()
    anomalies = page.locator(".st-key-cards_anom [data-testid='arp-cards']")
    anomalies.wait_for(timeout=120_000)
    page.wait_for_function(CARDS_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    unvoted = anomalies.locator("[data-testid='arp-card']:not(:has([aria-pressed='true']))").first
    oid = unvoted.get_attribute("data-object-id")  # the shared small atlas: this test takes its own vote back
    card = anomalies.locator(f"[data-testid='arp-card'][data-object-id='{oid}']")
    up, down = card.get_by_test_id("arp-card-up"), card.get_by_test_id("arp-card-down")
    plain_colour = up.evaluate("b => getComputedStyle(b).backgroundColor")

    def voted(pressed_up: str, pressed_down: str, tag: list[str]) -> None:
        expect(up).to_have_attribute("aria-pressed", pressed_up, timeout=120_000)
        expect(down).to_have_attribute("aria-pressed", pressed_down, timeout=120_000)
        wait_app_idle(page)
        assert tags.tags_of(open_atlas(uri), oid) == tag
        assert page.get_by_role("tab", name="Anomalies").get_attribute("aria-selected") == "true", "still on Anomalies"

    up.click()
    voted("true", "false", [tags.INTERESTING])
    assert up.evaluate("b => getComputedStyle(b).backgroundColor") != plain_colour, "the vote is highlighted"
    curve = page.locator(".st-key-found_curve img")  # the found-vs-inspected curve counts the vote, as an SVG image
    assert curve.get_attribute("src").startswith("data:image/svg+xml")
    assert not page.locator("[data-testid='stVegaLiteChart']").count()
    screenshot(page, "rare_voted", docs=True)
    down.click()  # the other vote replaces it
    voted("false", "true", [tags.NOT_INTERESTING])
    down.click()  # the same vote again takes it back
    voted("false", "false", [])

    card.get_by_test_id("arp-card-tag").click()  # the full tag bar for that object
    page.get_by_text(f"Tagging {oid}").wait_for(timeout=120_000)
    wait_app_idle(page)
    assert page.locator(".st-key-rare_tag_ring button").inner_text().split()[0] == "ring"
    assert page.get_by_role("tab", name="Anomalies").get_attribute("aria-selected") == "true"
    card.get_by_test_id("arp-card-open").click()
    page.get_by_role("heading", name=f"Galaxy {oid}").wait_for(timeout=120_000)


def test_map_coloured_by_a_rare_class_has_a_legend(app_url: tuple[str, str], page: object) -> None:
    url, _ = app_url
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    pick_option(page, "Colour by", "rare_class")
    page.get_by_test_id("arp-map-legend").wait_for(timeout=120_000)
    wait_app_idle(page)
    legend = page.get_by_test_id("arp-map-legend")
    assert legend.locator(".arp-map-key-title").inner_text() == "rare_class"
    items = legend.locator(".arp-map-key-item").all_inner_texts()
    assert items[-1] == "(none)" and "ring" in items, items  # rare classes labelled, the common value last
    swatches = legend.locator(".arp-map-swatch").evaluate_all("es => es.map(e => getComputedStyle(e).backgroundColor)")
    assert len(set(swatches)) == len(items), "each class its own colour"
    screenshot(page, "map_rare_class", docs=True)
