"""A real S3 API on 127.0.0.1 (moto's server mode) for object-storage atlas tests; no AWS account involved."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

TEST_SECRET = "arp-test-secret-key-not-real"
_REJECTED_PUT = re.compile(r'PUT \S+\.manifest\S* HTTP/1\.1\S*" 412')


@dataclass
class S3Endpoint:
    """The running server: its endpoint URL, and how many manifest PUTs it rejected (412, a lost commit race)."""

    url: str
    bucket: str
    rejected_commits: list[str] = field(default_factory=list)

    def uri(self, prefix: str) -> str:
        """An `s3://bucket/prefix` atlas URI on this server."""
        return f"s3://{self.bucket}/{prefix}"


class _RejectedCommits(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
        if _REJECTED_PUT.search(message):
            self.sink.append(message)


@contextmanager
def moto_s3(bucket: str = "arp") -> Iterator[S3Endpoint]:
    """Start moto's S3 server on a free port, point the standard AWS variables at it, create a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = S3Endpoint(f"http://{host}:{port}", bucket)
    wlog = logging.getLogger("werkzeug")
    handler = _RejectedCommits(endpoint.rejected_commits)
    old_level, old_propagate = wlog.level, wlog.propagate
    wlog.addHandler(handler)
    wlog.setLevel(logging.INFO)
    wlog.propagate = False  # one line per request: keep them out of the test report
    env = {"AWS_ENDPOINT_URL": endpoint.url, "AWS_ACCESS_KEY_ID": "arp-test-key", "AWS_SECRET_ACCESS_KEY": TEST_SECRET,
           "AWS_REGION": "us-east-1"}
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            mp.delenv("AWS_PROFILE", raising=False)
            boto3.client("s3", endpoint_url=endpoint.url, region_name="us-east-1").create_bucket(Bucket=bucket)
            yield endpoint
    finally:
        wlog.removeHandler(handler)
        wlog.setLevel(old_level)
        wlog.propagate = old_propagate
        server.stop()


def subprocess_env() -> dict[str, str]:
    """The environment for a child process that opens the S3 atlas (AWS variables included, repo importable)."""
    from tests.app_atlas import REPO

    return {**os.environ, "PYTHONPATH": str(REPO)}
