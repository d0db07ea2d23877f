"""Regenerate the README screenshots: one PNG per page of the app on an atlas (default: the demo atlas).

Usage: python docs/screenshots/capture.py [--atlas DIR]. Starts the app on a free 127.0.0.1 port, drives headless
Chromium, and writes docs/screenshots/<page>.png (palette PNGs, well under 300 KB each).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from backend.config import default_atlas_uri  # noqa: E402
from backend.store import open_atlas  # noqa: E402
from tests.browser import MAP, MAP_DRAWN_JS, chromium_context, streamlit_server, wait_app_idle  # noqa: E402


def save(page: object, name: str, scroll_to: str | None = None) -> None:
    """A viewport screenshot, quantised to a small palette PNG."""
    if scroll_to:
        page.locator(scroll_to).first.scroll_into_view_if_needed()
        time.sleep(0.5)
    raw = page.screenshot()
    img = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    img.save(HERE / f"{name}.png", optimize=True)
    print(f"{name}.png {(HERE / f'{name}.png').stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", default=default_atlas_uri())
    args = parser.parse_args()
    atlas = open_atlas(args.atlas)
    top = atlas.objects(["object_id", "morphology"], where="morphology = 'spiral'", limit=1)
    galaxy = str((top if len(top) else atlas.objects(["object_id"], limit=1))["object_id"].iloc[0])
    log = Path(tempfile.mkdtemp(prefix="arp-shots-")) / "streamlit.log"
    with streamlit_server(args.atlas, log) as url, chromium_context(1400, 900) as ctx:
        page = ctx.new_page()

        def visit(path: str, ready: str | None = None) -> None:
            page.goto(f"{url}/{path}")
            page.wait_for_selector("h1", timeout=300_000)
            if ready:
                page.wait_for_function(ready, timeout=300_000)
            wait_app_idle(page, 300_000)
            time.sleep(1.0)

        visit("home")
        save(page, "home")
        visit("map", MAP_DRAWN_JS)
        page.locator("[data-testid='stSelectbox']").nth(1).click()  # Colour by
        page.keyboard.type("redshift")
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-testid='arp-map-colourbar']", timeout=120_000)
        wait_app_idle(page)
        time.sleep(1.0)
        save(page, "map", MAP)
        visit(f"galaxy?object={galaxy}")
        page.wait_for_selector(".st-key-spectrum_svg img[src^='data:image/svg']", timeout=120_000)
        wait_app_idle(page)
        save(page, "galaxy")
        page.get_by_role("radio", name="image → spectrum").click()
        page.get_by_text("Neighbour spectra").wait_for(timeout=120_000)
        wait_app_idle(page)
        save(page, "galaxy_neighbours", "[class*='st-key-nb_']")
        visit("rare")
        save(page, "rare", "[data-testid='stTabs']")
        visit("probes")
        save(page, "probes", "[data-testid='stMetric']" if page.locator("[data-testid='stMetric']").count() else None)
        visit("jobs")
        save(page, "jobs")
        visit("data")
        save(page, "data")


if __name__ == "__main__":
    main()
