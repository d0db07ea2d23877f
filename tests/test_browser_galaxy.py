"""The Galaxy and Map pages in headless Chromium: opening a neighbour, the atlas field on a page opened by its URL,
and the thumbnail shown on map hover."""

from __future__ import annotations

import pytest

from backend.store import open_atlas
from tests.browser import screenshot, wait_app_idle

pytestmark = pytest.mark.browser

NEIGHBOUR_IDS_JS = """() => [...document.querySelectorAll("[class*='st-key-nb_']")].map(e =>
    [...e.classList].find(c => c.startsWith('st-key-nb_')).slice('st-key-nb_'.length))"""


def test_open_a_neighbour_moves_the_page_and_its_url(app_url: tuple[str, str], page: object) -> None:
    url, uri = app_url
    oid = open_atlas(uri).objects(["object_id"], limit=3)["object_id"].iloc[2]
    page.goto(f"{url}/galaxy?object={oid}")
    page.wait_for_function(f"() => ({NEIGHBOUR_IDS_JS})().length >= 12", timeout=120_000)
    wait_app_idle(page)
    target = page.evaluate(NEIGHBOUR_IDS_JS)[0]
    page.locator(f".st-key-nb_{target} button").click()
    page.get_by_role("heading", name=f"Galaxy {target}").wait_for(timeout=60_000)
    page.wait_for_function(f"() => !({NEIGHBOUR_IDS_JS})().includes({target!r}) && ({NEIGHBOUR_IDS_JS})().length >= 12",
                           timeout=60_000)
    assert f"object={target}" in page.url
    page.reload()  # the URL is the shareable state: it reopens the neighbour
    page.get_by_role("heading", name=f"Galaxy {target}").wait_for(timeout=60_000)
    wait_app_idle(page)
    screenshot(page, "galaxy_after_neighbour_click")
