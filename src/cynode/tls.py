"""TLS between CyNode's roles: server credentials, client trust, certificate pins, lab certificates.

Owns how a listener's certificate and key are checked before serving, how a client decides whom
to trust (the system store, a CA file, or a SHA-256 pin of the peer's certificate), the guard that
keeps a plain-HTTP Worker API to loopback callers, and ``cynode tls selfsigned``'s CA and server
certificate. A pin is the SHA-256 of the peer certificate's DER bytes (what ``openssl x509
-fingerprint -sha256`` prints), checked during the handshake so nothing is sent to an impostor.
With a pin and no CA file the chain is not verified: the pin names the one certificate trusted.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cynode.http.problems import problem_body

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_PIN_HEX_CHARS = 64


class TlsError(ValueError):
    """A certificate, key, CA file or pin is unusable; the message names the file or value."""


class PinMismatchError(ssl.SSLCertVerificationError):
    """The peer presented a certificate other than the pinned one."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"certificate pin mismatch: the peer's certificate SHA-256 is {actual}, pinned is {expected}")
        self.expected = expected
        self.actual = actual


def normalize_pin(value: str) -> str:
    """A pin as 64 lower-case hex digits; colons and spaces (fingerprint notation) are dropped."""
    pin = value.replace(":", "").replace(" ", "").strip().lower()
    if len(pin) != _PIN_HEX_CHARS or any(char not in "0123456789abcdef" for char in pin):
        raise TlsError("a SHA-256 pin is 64 hex digits (colons allowed), the certificate's DER fingerprint")
    return pin


def certificate_sha256(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def certificate_file_sha256(path: Path) -> str:
    """The pin of the first certificate in a PEM file."""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate_sha256(certificate.public_bytes(serialization.Encoding.DER))


class _PinCheck:
    """Mixed into ``SSLObject``/``SSLSocket``: compares the peer certificate with the pin once the
    handshake is done, before the caller can send a byte."""

    pinned_sha256 = ""

    def do_handshake(self, *args: Any) -> None:
        super().do_handshake(*args)  # type: ignore[misc]
        der = self.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        actual = certificate_sha256(der) if der else "<none>"
        if actual != self.pinned_sha256:
            raise PinMismatchError(self.pinned_sha256, actual)


def client_context(*, ca_file: Path | None = None, pinned_sha256: str | None = None) -> ssl.SSLContext:
    """Trust for outgoing HTTPS: ``ca_file`` else the system store, and the pin when given."""
    if pinned_sha256 is not None and ca_file is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the pin below is the whole of the trust decision
    else:
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(f"cannot load CA file {ca_file}: {_reason(exc)}") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if pinned_sha256 is not None:
        pin = normalize_pin(pinned_sha256)
        context.sslobject_class = type("PinnedSSLObject", (_PinCheck, ssl.SSLObject), {"pinned_sha256": pin})
        context.sslsocket_class = type("PinnedSSLSocket", (_PinCheck, ssl.SSLSocket), {"pinned_sha256": pin})
    return context


def refused_certificate(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate refusal somewhere in ``error``'s chain (httpx wraps it twice), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


@dataclass(frozen=True)
class ServerTls:
    """A listener's certificate chain and private key, both PEM files."""

    cert_file: Path
    key_file: Path

    def check(self) -> None:
        """Load both files the way the server will, so a bad pair fails at start-up, not per handshake."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"cannot load certificate {self.cert_file} with key {self.key_file}: {_reason(exc)}"
            ) from exc


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen address or client address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    # A dual-stack listener sees IPv4 callers as ::ffff:a.b.c.d.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


class PlainHttpLoopbackOnly:
    """ASGI guard for a listener without TLS: only loopback callers get through.

    Bearer tokens travel on these requests; across hosts they must not go in clear text.
    """

    def __init__(self, app: Any, listener: str) -> None:
        self._app = app
        self._body = problem_body(
            HTTPStatus.FORBIDDEN,
            f"the {listener} serves plain HTTP to loopback callers only; configure its TLS certificate and key",
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] == "lifespan" or (client is not None and is_loopback(client[0])):
            await self._app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": HTTPStatus.FORBIDDEN,
                "headers": [(b"content-type", b"application/problem+json")],
            }
        )
        await send({"type": "http.response.body", "body": self._body})


# --- Lab certificates (cynode tls selfsigned) ---------------------------------------------------


@dataclass(frozen=True)
class LabCertificates:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    server_pin: str


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
)  # fmt: skip


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CyNode lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_lab_certificates(out: Path, hosts: Iterable[str], *, days: int = 365) -> LabCertificates:
    """A CA and one server certificate (for ``hosts`` and loopback) signed by it, written to ``out``.

    The CA key is not kept: a lab deploy re-runs this to issue more. Every role may share the
    server certificate and key; nodes and orchestrators trust ``ca.pem`` or pin the server cert.
    """
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid_from = now - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("CyNode lab CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names = [*hosts, *LOOPBACK_NAMES]
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    written = LabCertificates(
        ca_cert=out / "ca.pem",
        server_cert=out / "server.pem",
        server_key=out / "server-key.pem",
        server_pin=certificate_sha256(server_cert.public_bytes(serialization.Encoding.DER)),
    )
    written.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    written.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(written.server_key, key_pem)
    return written
