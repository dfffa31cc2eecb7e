"""AES-256-GCM sealing of tenant credentials with a rotating key ring.

Each sealed value records the id of the key that sealed it; opening tries that key only, so a
wrong or retired key fails loudly instead of returning garbage.
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trackai_provisioner.service_layer.ports import KeyRingError, Sealed

NONCE_BYTES = 12


class KeyRing:
    """Keys by id; the first one configured is the primary (used to seal)."""

    def __init__(self, keys: dict[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise KeyRingError(f"primary key {primary!r} is not in the key ring")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.primary = primary

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            kid, sep, b64 = item.partition(":")
            if not sep or not kid:
                raise KeyRingError("each key must be written 'kid:base64-of-32-bytes'")
            try:
                key = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise KeyRingError(f"key {kid!r} is not valid base64") from exc
            if len(key) != 32:
                raise KeyRingError(f"key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
            if kid in keys:
                raise KeyRingError(f"key id {kid!r} appears twice")
            keys[kid] = key
            order.append(kid)
        if not order:
            raise KeyRingError("the key ring is empty")
        return cls(keys, order[0])

    def seal(self, secret: dict[str, str], associated_data: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(secret, sort_keys=True).encode()
        ciphertext = self._keys[self.primary].encrypt(nonce, plaintext, associated_data)
        return Sealed(self.primary, nonce, ciphertext)

    def open(self, sealed: Sealed, associated_data: bytes) -> dict[str, str]:
        aead = self._keys.get(sealed.key_id)
        if aead is None:
            raise KeyRingError(
                f"credential sealed with key {sealed.key_id!r}, which is not in "
                "TRACKAI_ENCRYPTION_KEYS; add it back (after the primary) to read it"
            )
        try:
            plaintext = aead.decrypt(sealed.nonce, sealed.ciphertext, associated_data)
        except InvalidTag as exc:
            raise KeyRingError(
                f"credential does not authenticate under key {sealed.key_id!r} "
                "(tampered row or wrong key material)"
            ) from exc
        value = json.loads(plaintext)
        if not isinstance(value, dict):
            raise KeyRingError("sealed credential is not an object")
        return {str(k): str(v) for k, v in value.items()}
