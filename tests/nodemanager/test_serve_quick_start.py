"""The README quick start: ``cynode serve --role=all`` with nothing configured gets its node ready."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.serve import Serve


def test_all_in_one_serve_makes_its_worker_ready_by_itself(data_dir: Path) -> None:
    serve = Serve(data_dir)
    try:
        serve.wait_healthy()
        response = serve.wait_ready(serve.worker)
        assert (response.status_code, response.text) == (200, "ready")
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr
    assert "node_registered" in stderr
    assert "node_config_applied" in stderr
    psk = (data_dir / "secrets" / "node_registration_psk").read_text().strip()
    assert psk not in stderr, "the registration PSK was logged"
    assert "eyJ" not in stderr, "a JWT was logged"
