"""The served app (README's `streamlit run app.py`, with the repo's .streamlit/config.toml) refuses foreign Hosts."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

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
