"""Opening the store skips the body of LanceDB's REST namespace client, and that client still works when asked for."""

from __future__ import annotations

import subprocess
import sys

from tests.app_atlas import REPO

CHECK = """
import sys
import backend.store
loaded = lambda: sorted(k for k in sys.modules if k.startswith('lance_namespace_urllib3_client.api.'))
print('before', len(loaded()))
from lance_namespace_urllib3_client import ApiClient, Configuration, TableApi
api = TableApi(ApiClient(Configuration(host='http://127.0.0.1:9')))
print('after', len(loaded()), type(api).__name__, hasattr(api, 'describe_table'))
"""


def test_the_store_opens_without_the_rest_client_and_the_client_loads_on_first_use() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert lines["before"] == "0"
    count, name, has_call = lines["after"].split()
    assert int(count) >= 5 and name == "TableApi" and has_call == "True"
