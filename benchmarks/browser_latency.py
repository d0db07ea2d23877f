"""Browser latency of the app on an atlas (default: the 10k demo): page loads, click-to-neighbours, recolour, box select.

Starts `streamlit run app.py` on a free 127.0.0.1 port and drives headless Chromium (Playwright):
- cold page load: a new tab and app session opens /map until the map (background + clickable points) is drawn
  and the script has finished; measured in a returning browser (the app's JS in the HTTP cache) and in a new
  browser profile (empty cache: the app's scripts to fetch and parse); the first load after server start
  (imports, numba JIT) is reported separately;
- click_to_neighbours: on a galaxy page, click one neighbour's Open button until that galaxy's page shows
  its 12 neighbour thumbnails.
- cold_start_to_home: `streamlit run` started until Home shows its counts, in a browser already running (new profile);
  `server_ready_s` beside it: until the server answers its health check;
- page_first_paint: after warm-up (each page opened once, then the server idle: no background JIT), a new tab on
  each page until its title and content are drawn and the script is idle (Rare: its open tab, the rare clusters,
  drawn to the end);
- recolour: on the map, pick another colour column until the new background image is drawn;
- box_select_to_gallery: drag a box on the map until the selection heading and its first thumbnails show.
Medians and p90 with the 1-minute load average at the start. Goals (issue 10, quiet machine): click <= 0.5 s,
first paint <= 1.5 s, recolour <= 1 s, box select <= 1.5 s, cold start <= 5 s.
`--galaxy-only`: the Galaxy page alone (its first paint and click -> next galaxy), e.g. on the 1M atlas;
`--map-only`: the Map page alone (its first paint, box select and recolour).
`--only cold_start,home,rare,click`: just those figures (cold start, the named pages' first paints, click -> next galaxy).
Usage: python benchmarks/browser_latency.py [--atlas DIR] [--repeats N] [--galaxy-only | --map-only | --only LIST]
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
from tests.browser import (  # noqa: E402
    BACKGROUND_JS,
    CARDS_DRAWN_JS,
    MAP,
    MAP_DRAWN_JS,
    NEIGHBOUR_IDS_JS,
    chromium_context,
    map_plot_box,
    streamlit_server,
    wait_app_idle,
    wait_server_idle,
)

NEIGHBOURS_JS = f"""([id, before]) => {{
  const h = [...document.querySelectorAll('h1')].some(e => e.innerText.trim() === 'Galaxy ' + id);
  const ids = ({NEIGHBOUR_IDS_JS})();
  const fresh = ids.length >= 12 && !ids.includes(id) && ids.join() !== before;
  const stale = document.querySelector("[data-testid='stMain'] [data-stale='true']");
  return h && fresh && !stale;
}}"""
KEYS_JS = f"() => ({NEIGHBOUR_IDS_JS})().join()"


def load_map(ctx: object, url: str) -> float:
    """Seconds from navigation to a drawn map in a new tab."""
    page = ctx.new_page()
    start = time.perf_counter()
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=300_000, polling=50)
    wait_app_idle(page, 300_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def p90(values: list[float]) -> float:
    """The 90th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def report(name: str, values: list[float], goal_s: float, objects: int, **extra: object) -> None:
    """One JSON line: median, p90, max (and, from emit, the load average)."""
    emit(name, statistics.median(values), "s", objects=objects, goal_s=goal_s, runs=len(values),
         p90_s=round(p90(values), 3), max_s=round(max(values), 3), **extra)


PAGE_READY = {
    "home": "() => document.body.innerText.includes('Where to start')",
    "map": MAP_DRAWN_JS,
    "galaxy": f"() => ({NEIGHBOUR_IDS_JS})().length >= 12",
    # the open tab (clusters) drawn to its end, and its card galleries with their thumbnails
    "rare": f"() => !!document.querySelector('.st-key-recluster button') && ({CARDS_DRAWN_JS})()",
    "probes": "() => !!document.querySelector('h1')",
    "jobs": "() => !!document.querySelector('h1')",
    "data": "() => !!document.querySelector('table.arp-table')",
}


def first_paint(ctx: object, url: str, name: str, query: str = "") -> float:
    """Seconds from navigation to a page's content, in a new tab of a warm browser."""
    page = ctx.new_page()
    start = time.perf_counter()
    page.goto(f"{url}/{name}{query}")
    page.wait_for_function(PAGE_READY[name], timeout=300_000, polling=50)
    wait_app_idle(page, 300_000)
    elapsed = time.perf_counter() - start
    page.close()
    return elapsed


def background_src(page: object) -> str:
    """A fingerprint of the map's background image (changes when it is redrawn)."""
    return page.evaluate(BACKGROUND_JS)


def recolour(ctx: object, url: str, columns: list[str]) -> list[float]:
    """Seconds from choosing a colour column to the new background drawn, for each column in turn."""
    page = ctx.new_page()
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=300_000, polling=50)
    wait_app_idle(page, 300_000)
    times = []
    for column in columns:
        before = background_src(page)
        page.get_by_label("Colour by").click()
        start = time.perf_counter()
        page.get_by_role("option", name=column, exact=True).click()
        try:
            page.wait_for_function(f"(b) => ({BACKGROUND_JS})() !== b", arg=before, timeout=180_000, polling=20)
            wait_app_idle(page, 180_000)
        except Exception as exc:  # noqa: BLE001 - a slow or missed redraw is reported, not fatal
            print(f"recolour to {column}: no new background within 180 s ({type(exc).__name__})", file=sys.stderr)
            continue
        times.append(time.perf_counter() - start)
    page.close()
    return times


def box_select(ctx: object, url: str, repeats: int) -> list[float]:
    """Seconds from releasing a box drag on the map to the selection heading with its thumbnails."""
    times = []
    for i in range(repeats):
        page = ctx.new_page()
        page.goto(f"{url}/map")
        page.wait_for_function(MAP_DRAWN_JS, timeout=300_000, polling=50)
        wait_app_idle(page, 300_000)
        page.locator(MAP).scroll_into_view_if_needed()
        page.get_by_test_id("arp-map-mode-box").click()
        area = map_plot_box(page)
        f = 0.30 + 0.04 * i
        x0, y0 = area["x"] + f * area["width"], area["y"] + f * area["height"]
        x1, y1 = area["x"] + (f + 0.3) * area["width"], area["y"] + (f + 0.3) * area["height"]
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x1, y1, steps=6)
        start = time.perf_counter()
        page.mouse.up()
        page.wait_for_function(
            "() => [...document.querySelectorAll('h2, h3')].some(h => /Selection: [1-9]/.test(h.innerText))"
            " && document.querySelectorAll(\".st-key-selection_cards [data-testid='arp-card']\").length > 0",
            timeout=120_000, polling=20)
        wait_app_idle(page, 120_000)
        times.append(time.perf_counter() - start)
        page.close()
    return times


def cold_start(atlas_uri: str, log: Path) -> tuple[float, float]:
    """Seconds from launching the server to Home with its counts, in a browser already running (a new profile: the
    app's scripts not cached); and the part of it until the server answers its health check."""
    with chromium_context(1400, 1000) as ctx:
        page = ctx.new_page()
        page.goto("about:blank")
        start = time.perf_counter()
        with streamlit_server(atlas_uri, log) as url:
            ready = time.perf_counter() - start
            page.goto(f"{url}/")
            page.wait_for_function(PAGE_READY["home"], timeout=300_000, polling=50)
            return time.perf_counter() - start, ready


def report_cold_start(atlas_uri: str, log: Path, repeats: int, n: int) -> None:
    """Cold start to Home, with the server's own start-up (to its health check) beside it."""
    runs = [cold_start(atlas_uri, log) for _ in range(repeats)]
    report("app_cold_start_to_home", [total for total, _ in runs], 5.0, n,
           server_ready_s=round(statistics.median(ready for _, ready in runs), 3))


def click_to_neighbours(ctx: object, url: str, start_id: str, clicks: int) -> list[float]:
    """Seconds from clicking a neighbour's Open button to that galaxy's page with its neighbours, per click."""
    page = ctx.new_page()
    page.goto(f"{url}/galaxy?object={start_id}")
    page.wait_for_function(NEIGHBOURS_JS, arg=[start_id, ""], timeout=300_000, polling=50)
    times = []
    for _ in range(clicks):
        before = page.evaluate(KEYS_JS)
        target = page.evaluate(NEIGHBOUR_IDS_JS)[0]
        button = page.locator(f".st-key-neighbour_cards [data-object-id='{target}'] [data-testid='arp-card-open']")
        start = time.perf_counter()
        button.click()
        page.wait_for_function(NEIGHBOURS_JS, arg=[target, before], timeout=120_000, polling=20)
        times.append(time.perf_counter() - start)
    page.close()
    return times


def warm_up(ctx: object, url: str, names: list[str], first_id: str) -> None:
    """Open each named page once (imports, caches), then wait until the server is idle: the first page a server draws
    starts its background warm-up (the map renderer's JIT, ~7 s of a core here), which must not overlap the timings."""
    for name in names:
        first_paint(ctx, url, name, f"?object={first_id}" if name == "galaxy" else "")
    wait_server_idle(url)


def only(atlas_uri: str, log: Path, names: list[str], repeats: int, first_id: str, n: int) -> None:
    """The figures named: cold start, first paints of some pages (each warmed up once first), click -> next galaxy."""
    if "cold_start" in names:
        report_cold_start(atlas_uri, log, repeats, n)
    pages = [name for name in PAGE_READY if name in names]
    if not pages and "click" not in names:
        return
    with streamlit_server(atlas_uri, log) as url, chromium_context(1400, 1000) as ctx:
        warm_up(ctx, url, pages or ["galaxy"], first_id)
        for name in pages:
            query = f"?object={first_id}" if name == "galaxy" else ""
            report(f"app_first_paint_{name}", [first_paint(ctx, url, name, query) for _ in range(repeats)], 1.5, n)
        if "click" in names:
            clicks = click_to_neighbours(ctx, url, first_id, repeats * 2 + 1)[1:]  # first click warms the path
            report("app_click_to_next_galaxy", clicks, 0.5, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlas", default=default_atlas_uri())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--map-only", action="store_true",
                        help="Only the Map page: first paint, box select and recolour (after one warm-up of each).")
    parser.add_argument("--galaxy-only", action="store_true",
                        help="Only the Galaxy page: first paint and click -> next galaxy (after one warm-up of each).")
    parser.add_argument("--only", type=lambda text: [w.strip() for w in text.split(",") if w.strip()],
                        help=f"Comma-separated: cold_start, click and/or pages ({', '.join(PAGE_READY)}).")
    args = parser.parse_args()
    if args.only and (unknown := set(args.only) - {"cold_start", "click", *PAGE_READY}):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    atlas = open_atlas(args.atlas)
    n = atlas.count("objects")
    first_id = str(atlas.objects(["object_id"], limit=1)["object_id"].iloc[0])
    log = Path(tempfile.mkdtemp(prefix="arp-bench-")) / "streamlit.log"
    columns = ["redshift", "rare_class", "cluster", "anomaly", "morphology", "density"]
    if args.galaxy_only:
        with streamlit_server(args.atlas, log) as url, chromium_context(1400, 1000) as ctx:
            query, large = f"?object={first_id}", n >= 1_000_000  # issue 11's goals at 1M: paint <= 3 s, click <= 1 s
            warm_up(ctx, url, ["galaxy"], first_id)
            paints = [first_paint(ctx, url, "galaxy", query) for _ in range(args.repeats)]
            report("app_first_paint_galaxy", paints, 3.0 if large else 1.5, n)
            clicks = click_to_neighbours(ctx, url, first_id, args.repeats * 2 + 1)[1:]  # first click warms the path
            report("app_click_to_next_galaxy", clicks, 1.0 if large else 0.5, n)
        return
    if args.only:
        only(args.atlas, log, args.only, args.repeats, first_id, n)
        return
    if args.map_only:
        with streamlit_server(args.atlas, log) as url, chromium_context(1400, 1000) as ctx:
            warm_up(ctx, url, ["map"], first_id)
            report("app_first_paint_map", [first_paint(ctx, url, "map") for _ in range(args.repeats)], 1.5, n)
            box_select(ctx, url, 1)  # warm-up
            report("app_box_select_to_gallery", box_select(ctx, url, args.repeats), 1.5, n)
            recolour(ctx, url, columns)  # warm-up: every colour kind once (numba JIT, caches)
            times = recolour(ctx, url, ["redshift", "rare_class", "density"] * 2)
            if times:
                report("app_map_recolour", times, 1.0, n)
        return
    report_cold_start(args.atlas, log, 1, n)
    with streamlit_server(args.atlas, log) as url:
        with chromium_context(1400, 1000) as ctx:
            emit("app_first_page_load_after_server_start", load_map(ctx, url), "s", objects=n)
            warm_up(ctx, url, list(PAGE_READY), first_id)  # every page once (imports, caches), then the JIT
            for name in PAGE_READY:
                query = f"?object={first_id}" if name == "galaxy" else ""
                report(f"app_first_paint_{name}", [first_paint(ctx, url, name, query) for _ in range(args.repeats)], 1.5, n)
            clicks = click_to_neighbours(ctx, url, first_id, args.repeats * 2 + 1)[1:]  # first click warms the path
            report("app_click_to_next_galaxy", clicks, 0.5, n)
            report("app_map_recolour", recolour(ctx, url, columns[: max(3, args.repeats + 2)]), 1.0, n)
            report("app_box_select_to_gallery", box_select(ctx, url, args.repeats), 1.5, n)
        fresh = []
        for _ in range(max(2, args.repeats // 2)):
            with chromium_context(1400, 1000) as ctx:  # a new browser profile: empty HTTP cache
                fresh.append(load_map(ctx, url))
        report("app_map_load_empty_browser_cache", fresh, 3.0, n)


if __name__ == "__main__":
    main()
