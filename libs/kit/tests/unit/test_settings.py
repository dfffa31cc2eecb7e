"""Outside local/test, a service refuses the development defaults and names the setting."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from trackai_kit.settings import ServiceSettings, estimated_entropy_bits, local_dev_token

STRONG = secrets.token_hex(32)


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ServiceSettings:
    monkeypatch.delenv("TRACKAI_ENV", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings(_env_file=None)  # type: ignore[call-arg]


def test_an_unset_environment_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, GRPC_CLIENT_TOKEN=STRONG)
    assert settings.environment == "production"
    assert not settings.is_development


def test_a_bare_process_refuses_the_development_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="GRPC_CLIENT_TOKEN is a public development token"):
        _settings(monkeypatch, GRPC_CLIENT_TOKEN=local_dev_token("ingestion"))


@pytest.mark.parametrize(
    "token",
    ["x", "a" * 64, "ab" * 32, "short-but-not-empty-token", "0123456789" * 3],
)
def test_production_refuses_weak_tokens(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    with pytest.raises(ValidationError, match="GRPC_CLIENT_TOKEN is too weak"):
        _settings(monkeypatch, TRACKAI_ENV="production", GRPC_CLIENT_TOKEN=token)


# Ids name the kinds: the values are random, and pytest-xdist needs one test list in every worker.
@pytest.mark.parametrize(
    "token", [secrets.token_hex(32), secrets.token_urlsafe(32)], ids=["hex", "urlsafe"]
)
def test_generated_tokens_pass(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    assert _settings(monkeypatch, TRACKAI_ENV="staging", GRPC_CLIENT_TOKEN=token)


@pytest.mark.parametrize("env", ["local", "test"])
def test_development_environments_keep_their_defaults(
    monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    settings = _settings(monkeypatch, TRACKAI_ENV=env)
    assert settings.is_development


def test_entropy_estimate_orders_secrets() -> None:
    assert estimated_entropy_bits("") == 0
    assert estimated_entropy_bits("a" * 40) == 0
    assert estimated_entropy_bits(secrets.token_hex(32)) > 200
