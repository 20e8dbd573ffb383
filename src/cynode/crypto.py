"""Encryption of secrets at rest (AES-256-GCM) under the deployment's secret key.

Owns the ciphertext layout (12-byte random nonce followed by ciphertext and tag) and where the key
comes from: ``CYNODE_SECRET_KEY`` (or ``_FILE``), base64 of 32 bytes, else a key generated once in
the data directory. ``associated_data`` binds a ciphertext to its row so it cannot be swapped.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cynode.secrets import persistent_secret
from cynode.settings import SettingsError

_NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext does not open with this key (wrong key, tampering, or wrong row)."""


@dataclass(frozen=True)
class SecretBox:
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("the secret key must be 32 bytes")

    def seal(self, plaintext: str, associated_data: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + AESGCM(self.key).encrypt(nonce, plaintext.encode(), associated_data.encode())

    def open(self, sealed: bytes, associated_data: str) -> str:
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return AESGCM(self.key).decrypt(nonce, ciphertext, associated_data.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not open with the configured secret key") from exc


def load_secret_box(data_dir: Path, env: Mapping[str, str] | None = None) -> SecretBox:
    encoded = persistent_secret("secret_key", data_dir, env)
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SettingsError("CYNODE_SECRET_KEY must be base64 of 32 bytes") from exc
    if len(key) != 32:
        raise SettingsError("CYNODE_SECRET_KEY must be base64 of 32 bytes")
    return SecretBox(key)
