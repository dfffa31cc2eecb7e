"""Each process's gRPC identity settings: development tokens only in local/test, encryption
required elsewhere (refused where gRPC is used, so a migration needs no gRPC settings)."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from trackai_kit.grpc import AccessPolicy, client_channel, start_grpc_server
from trackai_kit.settings import ServiceSettings, local_dev_callers, local_dev_token, token_digest

STRONG = {"GRPC_CLIENT_TOKEN": secrets.token_hex(32), "GRPC_CALLER_TOKENS": {"console": "ab" * 32}}
TLS = {"GRPC_TLS_CERT_FILE": "/tls/tls.crt", "GRPC_TLS_KEY_FILE": "/tls/tls.key"}


def _settings(**env: object) -> ServiceSettings:
    return ServiceSettings(service_name="matcher", _env_file=None, **env)  # type: ignore[arg-type, call-arg]


def test_local_defaults_are_the_development_identity_and_every_known_caller() -> None:
    settings = _settings(TRACKAI_ENV="local")
    assert settings.grpc_client_token.get_secret_value() == local_dev_token("matcher")
    assert settings.grpc.callers == local_dev_callers()
    assert not settings.grpc_tls.required


@pytest.mark.parametrize("identity", ["matcher", "operator"])
def test_production_refuses_any_development_client_token(identity: str) -> None:
    with pytest.raises(ValidationError, match="GRPC_CLIENT_TOKEN"):
        _settings(TRACKAI_ENV="production", GRPC_CLIENT_TOKEN=local_dev_token(identity))


def test_production_refuses_a_development_caller_digest() -> None:
    callers = {"operator": token_digest(local_dev_token("operator"))}
    with pytest.raises(ValidationError, match="GRPC_CALLER_TOKENS"):
        _settings(TRACKAI_ENV="production", GRPC_CALLER_TOKENS=callers)


def test_production_without_grpc_settings_starts_what_needs_no_grpc() -> None:
    settings = _settings(TRACKAI_ENV="production")
    assert settings.grpc.callers == {} and settings.grpc_tls.required
    with pytest.raises(ValueError, match="GRPC_CLIENT_TOKEN is empty"):
        client_channel("127.0.0.1:1", settings.grpc_client_token.get_secret_value())


async def test_production_refuses_plaintext_grpc_unless_a_mesh_encrypts_it() -> None:
    settings = _settings(TRACKAI_ENV="production", **STRONG)
    with pytest.raises(ValueError, match="GRPC_TLS_CERT_FILE"):
        await start_grpc_server(settings.grpc, lambda s: None, [], AccessPolicy({}))
    with pytest.raises(ValueError, match="GRPC_TLS_CA_FILE"):
        client_channel("127.0.0.1:1", "x" * 40, settings.grpc_tls)
    mesh = _settings(TRACKAI_ENV="production", **STRONG, GRPC_TLS_BY_MESH=True)
    assert not mesh.grpc.tls.required
    tls = _settings(TRACKAI_ENV="staging", **STRONG, **TLS, GRPC_TLS_CA_FILE="/tls/ca.crt")
    assert tls.grpc.tls.cert_file == "/tls/tls.crt" and tls.grpc.tls.required
    assert tls.grpc.callers == {"console": "ab" * 32}


def test_caller_tokens_are_read_as_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRPC_CALLER_TOKENS", '{"operator": "' + "cd" * 32 + '"}')
    assert _settings(TRACKAI_ENV="test").grpc.callers == {"operator": "cd" * 32}
