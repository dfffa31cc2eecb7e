"""Every tenant's access token is posted to META_GRAPH_URL: https only outside local/test."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from trackai_dispatcher.settings import Settings


def _settings(monkeypatch: pytest.MonkeyPatch, env: str, url: str) -> Settings:
    monkeypatch.setenv("TRACKAI_ENV", env)
    monkeypatch.setenv("GRPC_CLIENT_TOKEN", secrets.token_hex(32))
    monkeypatch.setenv("META_GRAPH_URL", url)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("url", ["http://graph.facebook.com", "graph.facebook.com", "https://"])
def test_production_refuses_a_meta_url_without_https(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    with pytest.raises(ValidationError, match="META_GRAPH_URL must use https"):
        _settings(monkeypatch, "production", url)


def test_the_sandbox_fake_is_fine_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(monkeypatch, "test", "http://127.0.0.1:8010").meta_graph_url


def test_production_accepts_the_graph_api(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings(monkeypatch, "production", "https://graph.facebook.com").meta_graph_url
