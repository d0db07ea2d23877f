"""Browser latency of the app on an atlas (default: the 10k demo): cold page load and click-to-neighbours.

Starts `streamlit run app.py` on a free 127.0.0.1 port and drives headless Chromium (Playwright):
- cold page load: a new tab and app session opens /map until the map (background + clickable points) is drawn
  and the script has finished; measured in a returning browser (the app's JS in the HTTP cache) and in a new
  browser profile (empty cache: ~5 MB of plotly.js to fetch and parse); the first load after server start
  (imports, numba JIT) is reported separately;
- click_to_neighbours: on a galaxy page, click one neighbour's Open button until that galaxy's page shows
  its 12 neighbour thumbnails.
Goals: <= 3 s and <= 1 s. Prints JSON lines. Usage: python benchmarks/browser_latency.py [--atlas DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_common import emit  # noqa: E402

from backend.config import default_atlas_uri  # noqa: E402
from backend.store import open_atlas  # noqa: E402
from tests.browser import chromium_context, streamlit_server, wait_app_idle  # noqa: E402

MAP_READY_JS = """() => {
  const gd = document.querySelector('.js-plotly-plot');
  return !!(gd && gd._fullData && gd._fullData.some(t => t.name === 'objects' && t.x && t.x.length)
            && gd.querySelector('image'));
}"""
NEIGHBOURS_JS = """([id, before]) => {
  const h = [...document.querySelectorAll('h1')].some(e => e.innerText.trim() === 'Galaxy ' + id);
  const keys = [...document.querySelectorAll("[class*='st-key-nb_']")].map(e =>
      [...e.classList].find(c => c.startsWith('st-key-nb_')));
  const fresh = keys.length >= 12 && !keys.includes('st-key-nb_' + id) && keys.join() !== before;
  const stale = document.querySelector("[data-testid='stMain'] [data-stale='true']");
  return h && fresh && !stale;
}"""
KEYS_JS = """() => [...document.querySelectorAll("[class*='st-key-nb_']")].map(e =>
    [...e.classList].find(c => c.startsWith('st-key-nb_'))).join()"""




def load_map(ctx: object, url: str) -> float:
    """Seconds from navigation to a drawn map in a new tab."""
    page = ctx.new_page()
    start = time.perf_counter()
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_READY_JS, timeout=300_000, polling=50)
    wait_app_idle(page, 300_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def click_to_neighbours(ctx: object, url: str, start_id: str, clicks: int) -> list[float]:
    """Seconds from clicking a neighbour's Open button to that galaxy's page with its neighbours, per click."""
    page = ctx.new_page()
    page.goto(f"{url}/galaxy?object={start_id}")
    page.wait_for_function(NEIGHBOURS_JS, arg=[start_id, ""], timeout=300_000, polling=50)
    times = []
    for _ in range(clicks):
        before = page.evaluate(KEYS_JS)
        button = page.locator("[data-testid='stMain'] button", has_text="Open").first
        key = button.locator("xpath=ancestor::*[contains(@class, 'st-key-nb_')][1]").get_attribute("class") or ""
        target = next(c for c in key.split() if c.startswith("st-key-nb_")).removeprefix("st-key-nb_")
        start = time.perf_counter()
        button.click()
        page.wait_for_function(NEIGHBOURS_JS, arg=[target, before], timeout=120_000, polling=20)
        times.append(time.perf_counter() - start)
    page.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", default=default_atlas_uri())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    atlas = open_atlas(args.atlas)
    n = atlas.count("objects")
    first_id = str(atlas.objects(["object_id"], limit=1)["object_id"].iloc[0])
    log = Path(tempfile.mkdtemp(prefix="arp-bench-")) / "streamlit.log"
    with streamlit_server(args.atlas, log) as url:
        with chromium_context(1400, 1000) as ctx:
            emit("app_first_page_load_after_server_start", load_map(ctx, url), "s", objects=n)
        fresh = []
        for _ in range(args.repeats):
            with chromium_context(1400, 1000) as ctx:  # a new browser profile: empty HTTP cache
                fresh.append(load_map(ctx, url))
        emit("app_cold_page_load_empty_browser_cache_median", statistics.median(fresh), "s", objects=n, goal_s=3.0,
             runs=len(fresh), max_s=round(max(fresh), 3))
        with chromium_context(1400, 1000) as ctx:  # a returning browser: new tab and app session, cached JS
            load_map(ctx, url)
            returning = [load_map(ctx, url) for _ in range(args.repeats)]
        emit("app_cold_page_load_median", statistics.median(returning), "s", objects=n, goal_s=3.0,
             runs=len(returning), max_s=round(max(returning), 3), note="new session in a browser with the app's JS cached")
        with chromium_context(1400, 1000) as ctx:
            clicks = click_to_neighbours(ctx, url, first_id, args.repeats + 1)[1:]  # first click warms the path
        emit("app_click_to_neighbours_median", statistics.median(clicks), "s", objects=n, goal_s=1.0,
             runs=len(clicks), max_s=round(max(clicks), 3))


if __name__ == "__main__":
    main()
