"""Key ring: sealing, opening, binding to scope, rotation and configuration errors."""

import base64
import os
import uuid

import pytest

from trackai_provisioner.adapters.crypto import KeyRing
from trackai_provisioner.domain.tenants import credential_associated_data
from trackai_provisioner.service_layer.ports import KeyRingError, Sealed


def _spec(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


def test_sealed_secret_opens_and_never_contains_plaintext() -> None:
    ring = KeyRing.parse(_spec("k1"))
    aad = credential_associated_data(uuid.uuid4(), "gateway", "kiwify", None)
    sealed = ring.seal({"secret": "kiwify-token-123456"}, aad)
    assert sealed.key_id == "k1"
    assert b"kiwify-token" not in sealed.ciphertext
    assert ring.open(sealed, aad) == {"secret": "kiwify-token-123456"}


def test_same_secret_seals_differently_each_time() -> None:
    ring = KeyRing.parse(_spec("k1"))
    a = ring.seal({"secret": "s3cr3t-value"}, b"x")
    b = ring.seal({"secret": "s3cr3t-value"}, b"x")
    assert a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_credential_moved_to_another_tenant_does_not_open() -> None:
    ring = KeyRing.parse(_spec("k1"))
    sealed = ring.seal(
        {"secret": "abcdefgh"}, credential_associated_data(uuid.uuid4(), "gateway", "kiwify", None)
    )
    other = credential_associated_data(uuid.uuid4(), "gateway", "kiwify", None)
    with pytest.raises(KeyRingError, match="does not authenticate"):
        ring.open(sealed, other)


def test_rotation_primary_seals_old_keys_still_open() -> None:
    old = _spec("k1")
    sealed = KeyRing.parse(old).seal({"access_token": "EAAB-token"}, b"aad")
    rotated = KeyRing.parse(f"{_spec('k2')},{old}")
    assert rotated.primary == "k2"
    assert rotated.open(sealed, b"aad") == {"access_token": "EAAB-token"}
    assert rotated.seal({"a": "b"}, b"aad").key_id == "k2"


def test_retired_key_gives_an_actionable_error() -> None:
    sealed = KeyRing.parse(_spec("k1")).seal({"a": "b"}, b"aad")
    with pytest.raises(KeyRingError, match="not in TRACKAI_ENCRYPTION_KEYS"):
        KeyRing.parse(_spec("k2")).open(sealed, b"aad")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("nokey", "kid:base64"),
        ("k1:!!!", "not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "32 bytes"),
        (f"{_spec('k1')},{_spec('k1')}", "appears twice"),
    ],
    # Named, not by value: one spec is random, and every xdist worker needs one test list.
    ids=["empty", "no-kid", "bad-base64", "short-key", "kid-twice"],
)
def test_bad_key_ring_is_refused(spec: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message):
        KeyRing.parse(spec)


def test_tampered_ciphertext_is_refused() -> None:
    ring = KeyRing.parse(_spec("k1"))
    sealed = ring.seal({"a": "b"}, b"aad")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]
    with pytest.raises(KeyRingError):
        ring.open(Sealed(sealed.key_id, sealed.nonce, flipped), b"aad")
