"""TLS on the listeners and trust on the clients: CA files, pins, refusals, and clear text kept to loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from cynode.http.app import build_app
from cynode.http.server import ServedApp
from cynode.settings import SettingsError, load_settings
from cynode.tls import (
    LabCertificates,
    PinMismatchError,
    ServerTls,
    TlsError,
    client_context,
    is_loopback,
    refused_certificate,
)
from tests.fixtures.deploy import non_loopback_address


async def _always_ready() -> str | None:
    return None


def _app() -> ServedApp:
    app = build_app(route_handlers=[], readiness=_always_ready, max_body_bytes=1024)
    return ServedApp("probe", app, "127.0.0.1", 0)


@pytest.fixture
async def https_probe(lab_certificates: LabCertificates) -> AsyncIterator[ServedApp]:
    served = _app()
    served.tls = ServerTls(lab_certificates.server_cert, lab_certificates.server_key)
    await served.start()
    yield served
    await served.stop()


async def test_https_listener_is_trusted_by_its_ca_and_by_its_pin(
    https_probe: ServedApp, lab_certificates: LabCertificates
) -> None:
    assert https_probe.base_url.startswith("https://127.0.0.1:")
    by_ca = client_context(ca_file=lab_certificates.ca_cert)
    colon_pin = ":".join(lab_certificates.server_pin[i : i + 2] for i in range(0, 64, 2)).upper()
    by_pin = client_context(pinned_sha256=colon_pin)
    for verify in (by_ca, by_pin):
        async with httpx.AsyncClient(verify=verify) as client:
            assert (await client.get(f"{https_probe.base_url}/healthz")).status_code == 200
        # The synchronous client checks through SSLSocket rather than SSLObject (off the serving loop).
        response = await asyncio.to_thread(httpx.get, f"{https_probe.base_url}/healthz", verify=verify)
        assert response.status_code == 200


async def test_a_certificate_other_than_the_pinned_one_is_refused_naming_both(
    https_probe: ServedApp, lab_certificates: LabCertificates, stranger_certificates: LabCertificates
) -> None:
    verify = client_context(pinned_sha256=stranger_certificates.server_pin)
    async with httpx.AsyncClient(verify=verify) as client:
        with pytest.raises(httpx.ConnectError) as error:
            await client.get(f"{https_probe.base_url}/healthz")
    refused = refused_certificate(error.value)
    assert isinstance(refused, PinMismatchError)
    assert lab_certificates.server_pin in str(refused)
    assert stranger_certificates.server_pin in str(refused)


async def test_a_certificate_from_another_ca_or_the_system_store_is_refused(
    https_probe: ServedApp, stranger_certificates: LabCertificates
) -> None:
    for verify in (client_context(ca_file=stranger_certificates.ca_cert), client_context()):
        async with httpx.AsyncClient(verify=verify) as client:
            with pytest.raises(httpx.ConnectError) as error:
                await client.get(f"{https_probe.base_url}/healthz")
        assert refused_certificate(error.value) is not None


async def test_plain_http_listener_for_tokens_answers_loopback_only() -> None:
    served = _app()
    served.host = "0.0.0.0"
    served.plain_http_loopback_only = True
    await served.start()
    try:
        remote = non_loopback_address()
        async with httpx.AsyncClient() as client:
            local = await client.get(f"http://127.0.0.1:{served.port}/healthz")
            refused = await client.get(f"http://{remote}:{served.port}/healthz")
    finally:
        await served.stop()
    assert local.status_code == 200
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "TLS" in refused.json()["detail"]


def test_bad_pins_ca_files_and_key_pairs_are_refused(tmp_path: Path, lab_certificates: LabCertificates) -> None:
    with pytest.raises(TlsError, match="64 hex digits"):
        client_context(pinned_sha256="sha256/AAAA")
    with pytest.raises(TlsError, match="cannot load CA file"):
        client_context(ca_file=tmp_path / "absent.pem")
    with pytest.raises(TlsError, match="cannot load certificate"):
        ServerTls(lab_certificates.server_cert, lab_certificates.ca_cert).check()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"gateway.tls_cert_file": "/etc/cert.pem"}, "gateway"),
        ({"worker_api.tls_key_file": "/etc/key.pem"}, "worker_api"),
        ({"worker_api_trust.pinned_sha256": "abc"}, "worker_api_trust.pinned_sha256"),
        ({"worker_api_trust.ca_file": "/nonexistent/ca.pem"}, "worker_api_trust.ca_file"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_naming_the_setting(
    tmp_path: Path, overrides: dict[str, str], names: str
) -> None:
    with pytest.raises(SettingsError, match=names):
        load_settings(env={}, overrides={"data_dir": str(tmp_path), **overrides})


def test_https_urls_follow_the_control_plane_certificate(tmp_path: Path, lab_certificates: LabCertificates) -> None:
    settings = load_settings(
        env={},
        overrides={
            "data_dir": str(tmp_path),
            "control_plane.tls_cert_file": str(lab_certificates.server_cert),
            "control_plane.tls_key_file": str(lab_certificates.server_key),
        },
    )
    assert settings.control_plane_public_url.startswith("https://")


def _serve_node(tmp_path: Path, *assignments: str) -> Callable[[], subprocess.CompletedProcess[str]]:
    def run() -> subprocess.CompletedProcess[str]:
        args = [arg for assignment in assignments for arg in ("--set", assignment)]
        return subprocess.run(
            [sys.executable, "-m", "cynode.cli", "serve", "--role=node", "--data-dir", str(tmp_path), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run


def test_serve_with_an_unusable_certificate_exits_naming_the_listener(
    tmp_path: Path, lab_certificates: LabCertificates
) -> None:
    result = _serve_node(
        tmp_path,
        "worker_api.port=0",
        f"worker_api.tls_cert_file={lab_certificates.server_cert}",
        f"worker_api.tls_key_file={tmp_path / 'missing-key.pem'}",
    )()
    assert result.returncode != 0
    assert "worker_api TLS: cannot load certificate" in result.stderr
    assert "Traceback" not in result.stderr


def test_selfsigned_command_writes_a_usable_lab_ca(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cynode.cli", "tls", "selfsigned", "--out", str(tmp_path / "tls"), "--host", "n1.lab"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    pin = result.stdout.strip().rsplit(" ", 1)[-1]
    ServerTls(tmp_path / "tls" / "server.pem", tmp_path / "tls" / "server-key.pem").check()
    client_context(ca_file=tmp_path / "tls" / "ca.pem", pinned_sha256=pin)
    assert (tmp_path / "tls" / "server-key.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("::ffff:127.0.0.1", True), ("localhost", True),
     ("0.0.0.0", False), ("192.0.2.2", False), ("::ffff:192.0.2.2", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_loopback_is_recognised_in_every_notation(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
