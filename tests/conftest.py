"""Shared fixtures: fresh atlases in temporary folders; the live app and a headless Chromium for browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.store import Atlas, open_atlas
from tests.app_atlas import shared_app_atlas
from tests.browser import chromium_context, streamlit_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def atlas(tmp_path: Path) -> Atlas:
    """An empty atlas in a temporary folder."""
    return open_atlas(tmp_path / "atlas", create=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The app served on a free 127.0.0.1 port against the small shared atlas (one server per test module)."""
    uri = shared_app_atlas(tmp_path_factory)
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with streamlit_server(uri, log) as url:
        yield url, uri


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium with a fresh profile (one per test module)."""
    with chromium_context(1400, 1300) as ctx:
        yield ctx


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A new tab, closed after the test."""
    tab = browser.new_page()
    yield tab
    tab.close()


_RERUNS: list[tuple[str, str]] = []
RERUN_TRACEBACK_CHARS = 4000


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the failure of each test that passed only on its rerun (pytest-rerunfailures prints just its name)."""
    if report.outcome == "rerun":
        _RERUNS.append((report.nodeid, report.longreprtext[-RERUN_TRACEBACK_CHARS:]))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the kept failures of rerun tests, so a flaky test leaves its traceback in the CI log."""
    for nodeid, text in _RERUNS:
        terminalreporter.write_sep("-", f"first failure of {nodeid} (rerun)")
        terminalreporter.write_line(text)
