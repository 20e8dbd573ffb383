"""The README quick start: ``cynode serve --role=all`` with nothing configured gets its node ready."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.foundation.test_serve import Serve
from tests.foundation.test_serve import data_dir as data_dir  # the fixture: a data dir the postgres user can reach


def test_all_in_one_serve_makes_its_worker_ready_by_itself(data_dir: Path) -> None:
    serve = Serve(data_dir)
    readyz = serve.url(serve.worker, "/readyz")
    try:
        serve.wait_healthy()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and serve.process.poll() is None:
            if httpx.get(readyz).status_code == 200:
                break
            time.sleep(0.5)
        response = httpx.get(readyz)
        assert (response.status_code, response.text) == (200, "ready")
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr
    assert "node_registered" in stderr
    assert "node_config_applied" in stderr
    psk = (data_dir / "secrets" / "node_registration_psk").read_text().strip()
    assert psk not in stderr, "the registration PSK was logged"
    assert "eyJ" not in stderr, "a JWT was logged"
