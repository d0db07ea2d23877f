"""The served app (README's `streamlit run app.py`, with the repo's .streamlit/config.toml) refuses foreign Hosts."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.app_atlas import REPO, free_port
from tests.browser import streamlit_server


def handshake(url: str, host: str) -> int:
    """HTTP status of a websocket upgrade to the app's stream endpoint sent with the given Host header."""
    port = urlparse(url).port
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n"
        "Sec-WebSocket-Protocol: streamlit\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1])


@pytest.mark.browser
def test_websocket_refuses_a_rebinding_host_and_accepts_local_names(tmp_path: Path) -> None:
    with streamlit_server(str(tmp_path / "atlas"), tmp_path / "server.log") as url:
        port = urlparse(url).port
        assert handshake(url, f"127.0.0.1:{port}") == 101
        assert handshake(url, f"localhost:{port}") == 101
        assert handshake(url, f"[::1]:{port}") == 101
        assert handshake(url, f"evil.example:{port}") != 101
        assert handshake(url, "evil.example") != 101
        assert handshake(url, f"localhost.evil.example:{port}") != 101


@pytest.mark.browser
def test_the_allow_list_holds_when_the_app_is_started_from_another_folder(tmp_path: Path) -> None:
    """Streamlit reads the config next to app.py too, so `streamlit run /path/to/app.py` from anywhere is covered."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.port", str(port),
           "--server.headless", "true", "--server.fileWatcherType", "none"]
    env = {**os.environ, "ARP_ATLAS": str(tmp_path / "atlas")}
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                    time.sleep(0.3)
            assert handshake(url, f"127.0.0.1:{port}") == 101
            assert handshake(url, f"evil.example:{port}") != 101
        finally:
            proc.terminate()
            proc.wait(15)
