"""Headless Chromium (Debian's, driven by Playwright) and a live `streamlit run app.py` for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.app_atlas import REPO, free_port

CHROMIUM = os.environ.get("ARP_CHROMIUM", "/usr/bin/chromium")
# Chromium keeps only the last --disable-features, so this one repeats the list Playwright 1.65 passes before ours,
# and adds WebUIOmniboxPopup: Chromium 156 works on its WebUI omnibox popup for every new tab, even headless, CPU
# that competes with the page on a 2-core box (paired, a new Galaxy tab: 1.61 s with it off, 1.81 s with it on).
DISABLED_FEATURES = [
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "OptimizationHints", "NetworkTimeServiceQuerying", "AimEnabled",
    "PreconnectToSearch", "WebUIOmniboxPopup",
]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", f"--disable-features={','.join(DISABLED_FEATURES)}",
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",  # software WebGL for the Plotly charts
]
ARTIFACTS = REPO / "test-artifacts"
DOCS_SHOTS = REPO / "docs" / "screenshots" / "browser"


# The Map page's map component (pages/assets/map_canvas.js): drawn once its root carries the background it drew.
MAP = "[data-testid='arp-map']"
MAP_DRAWN_JS = f"""() => {{ const r = document.querySelector("{MAP}");
  return !!(r && r.dataset.bg && Number(r.dataset.points) > 0); }}"""
# Pixel position (in the page) of one point of the map's hover sample, from the component's own transform.
POINT_JS = f"""() => {{ const r = document.querySelector("{MAP}");
  if (!r || !r.dataset.bg || !r.arpPoint || !(Number(r.dataset.points) > 0)) return null;
  return r.arpPoint(Math.floor(Number(r.dataset.points) / 3)); }}"""
# The Galaxy page's neighbour cards (pages/assets/cards.js), as object ids in grid order (drawn with their thumbnails).
NEIGHBOUR_IDS_JS = """() => [...document.querySelectorAll(".st-key-neighbour_cards [data-testid='arp-card']")]
    .filter(c => { const i = c.querySelector('img'); return !i || (i.complete && i.naturalWidth > 0); })
    .map(c => c.getAttribute('data-object-id'))"""


# The Rare page's card galleries (pages/assets/cards.js): every component of the main area drawn, at least one gallery
# among them, and every card's thumbnail decoded.
CARDS_DRAWN_JS = """() => {
  const parts = [...document.querySelectorAll("[data-testid='stMain'] [data-testid='stBidiComponentRegular']")];
  const galleries = [...document.querySelectorAll("[data-testid='arp-cards'][data-cards]")];
  return galleries.length > 0 && parts.every(e => e.childElementCount > 0)
    && galleries.every(g => [...g.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)); }"""
# A fingerprint of the background image the map drew last (changes when a recolour or zoom is drawn).
BACKGROUND_JS = f"""() => {{ const r = document.querySelector("{MAP}"); return (r && r.dataset.bg) || ''; }}"""


SERVER_PIDS: dict[str, int] = {}  # base URL -> pid of each server `streamlit_server` is running


def wait_server_idle(url: str, *, window_s: float = 0.5, busy_below: float = 0.1, timeout_s: float = 120.0) -> float:
    """Wait until the app server at `url` uses under `busy_below` of a core for two windows in a row (its background
    warm-up, e.g. the map renderer's JIT, is done); returns the seconds waited."""
    pid, start, quiet = SERVER_PIDS[url], time.monotonic(), 0
    used = cpu_seconds(pid)
    while quiet < 2 and time.monotonic() - start < timeout_s:
        time.sleep(window_s)
        now = cpu_seconds(pid)
        quiet, used = (quiet + 1 if now - used < busy_below * window_s else 0), now
    return time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a Linux process, its finished threads included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def streamlit_server(atlas_uri: str, log_path: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """Run the app on a free 127.0.0.1 port against an atlas; yields its base URL, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "ARP_ATLAS": atlas_uri}
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true",
        "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
        "--", "--atlas", atlas_uri,
    ]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        SERVER_PIDS[url] = proc.pid
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s:.0f} s")
                time.sleep(0.3)
            yield url
        finally:
            SERVER_PIDS.pop(url, None)
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def chromium_context(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A Playwright persistent context of headless Chromium with a fresh user-data dir."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} not found: install it with `apt-get install chromium` (or `make chromium`)")
    profile = tempfile.mkdtemp(prefix="arp-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height},
            )
            ctx.set_default_timeout(90_000)
            try:
                yield ctx
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_app_idle(page: object, timeout_ms: int = 90_000) -> None:
    """Wait until Streamlit has finished running the script (no 'running' status widget)."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidget']\") "
        "|| !document.querySelector(\"[data-testid='stStatusWidget']\").innerText.match(/Running|Connecting/)",
        timeout=timeout_ms,
    )


def pick_option(page: object, label: str, option: str, timeout_ms: int = 120_000) -> None:
    """Choose `option` in the select box `label` as a keyboard user does (type to filter, Enter) and wait until the box
    shows it. A mouse click on an option of the open list was lost about 1 run in 10 on a loaded box (the list stayed
    open, the option highlighted, the value unchanged: the click fell between two renders of the menu)."""
    box = page.get_by_label(label)
    box.click()
    box.press_sequentially(option)
    page.get_by_role("option", name=option, exact=True).wait_for(timeout=timeout_ms)
    box.press("Enter")
    page.wait_for_function("([l, o]) => { const e = document.querySelector(`input[aria-label='${l}']`);"
                           " return !!e && e.value === o; }", arg=[label, option], timeout=timeout_ms)


def screenshot(page: object, name: str, *, docs: bool = False) -> Path:
    """Save a full-page screenshot under test-artifacts/ (kept by CI); `docs=True` also writes a small palette PNG
    of the viewport to docs/screenshots/browser/ (what each page looked like in the last browser test run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs:
        import io

        from PIL import Image

        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        img = Image.open(io.BytesIO(page.screenshot())).convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT)
        img.save(DOCS_SHOTS / f"{name}.png", optimize=True)
    return path


def map_plot_box(page: object) -> dict:
    """The map's plot area (inside the axes) in page pixels: x, y, width, height."""
    return page.evaluate(f"() => document.querySelector(\"{MAP}\").arpPlotBox()")


def map_to_data(page: object, points: list[tuple[float, float]]) -> list[list[float]]:
    """Page pixels to the map's data coordinates, as the component converts them."""
    return page.evaluate(f"(ps) => ps.map(([x, y]) => document.querySelector(\"{MAP}\").arpToData(x, y))", points)


def shown_space(page: object, spaces: list[str]) -> str:
    """The embedding space the Map page's Space box shows."""
    text = page.evaluate(
        """() => [...document.querySelectorAll("[data-testid='stSelectbox']")].filter(e => e.innerText.includes('Space'))
                 .map(e => (e.querySelector('[data-baseweb=select]') || e).textContent
                            + ' ' + ((e.querySelector('input') || {}).value || '')).join(' ')"""
    )
    return max((s for s in spaces if s in text), key=len)


def open_map(page: object, url: str) -> dict:
    """Open the Map page until its map is drawn and the script idle, scrolled into view; returns its plot area."""
    page.goto(f"{url}/map")
    page.wait_for_function(MAP_DRAWN_JS, timeout=120_000)
    wait_app_idle(page)
    page.locator(MAP).scroll_into_view_if_needed()
    return map_plot_box(page)
