"""Shared helpers of the ingestion tests: the real gateway payloads copied from the shared fixtures."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from trackai_testing.personal_data import personal_values

FIXTURES = Path(__file__).parent / "fixtures" / "gateways"
#: Kiwify's byte-exact vectors (fixtures README): key and the signatures Kiwify sent.
KIWIFY_KEY = "9ch0bpzogu9"
KIWIFY_SIGNATURES = {
    "kiwify-1.json": "06f61a6aff46cea884f02a981caedc92c3c247b8",
    "kiwify-2.json": "c917b9ac6d93c7f7a4ae2163aff0bdc482d1cc75",
}

#: Personal data and secrets that appear in the fixtures: none may be stored, logged or sent.
PLAINTEXT = [
    "johndoe@example.com",
    "John Doe",
    "45658495664",
    "+41945968750",
    "buyer@example.com",
    "REDACTED Buyer Name",
    "00000000000",
    "(31) 90000-0000",
    "900000000",
    "testeComprador271101postman15@example.com",
    "Teste Comprador",
    "69526128664",
    "99999999900",
    "kaique@test.com",
    "Kaique Garcia",
    "11999999999",
    "João Silva",
    "joao@email.com",
    "john.doe@example.com",
    "34999999999",
    "12345678909",
    "Rua 1001",
    "82.253.125.70",
    "webhook@eduzz.com",
    "Teste Webhook",
    "99999999911",
    "011999999999",
    "0123456789abcdef0123456789abcdef",
    "f8c3de3d-1fea-4d7c-a8b0-29f63c4c3454",
    "REDACTED_ACCOUNT_HOTTOK",
    # Monetizze, Braip, Ticto, Greenn buyers (secrets and the rest: personal_values).
    "27900000000",
    "buyer2@example.com",
    "joao@example.com",
    "123.456.789-00",
    "11988888888",
]


#: The buyers' personal values of every fixture, derived from their personal fields.
FIXTURE_PERSONAL_DATA = frozenset(
    value
    for path in FIXTURES.glob("*.json")
    for value in personal_values(json.loads(path.read_bytes()))
)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture_bytes(name))
    return loaded


def hmac_hex(algorithm: str, key: str, raw: bytes) -> str:
    return hmac.new(key.encode(), raw, algorithm).hexdigest()


def sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
