"""Outside local/test the provisioner refuses the published dev key ring and http:// providers."""

from __future__ import annotations

import base64
import secrets

import pytest
from pydantic import ValidationError

from trackai_provisioner.settings import LOCAL_DEV_KEY_RING, Settings

REAL_KEY = "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.setenv("TRACKAI_ENV", "production")
    monkeypatch.setenv("GRPC_CLIENT_TOKEN", secrets.token_hex(32))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "ring",
    [
        LOCAL_DEV_KEY_RING,
        f"{REAL_KEY},{LOCAL_DEV_KEY_RING}",
        # The same material under another key id is the same published key.
        "prod:" + LOCAL_DEV_KEY_RING.partition(":")[2],
    ],
    # Named, not by value: one ring holds a random key, and every xdist worker needs one list.
    ids=["dev-only", "real-then-dev", "dev-material-renamed"],
)
def test_production_refuses_the_development_key(monkeypatch: pytest.MonkeyPatch, ring: str) -> None:
    with pytest.raises(ValidationError, match="TRACKAI_ENCRYPTION_KEYS holds the published"):
        _settings(monkeypatch, TRACKAI_ENCRYPTION_KEYS=ring)


def test_the_development_key_is_fine_in_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKAI_ENV", "test")
    monkeypatch.delenv("TRACKAI_ENCRYPTION_KEYS", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.encryption_keys.get_secret_value() == LOCAL_DEV_KEY_RING


@pytest.mark.parametrize(
    "name", ["CLOUDFLARE_API_URL", "STAPE_API_URL", "GTM_API_URL", "META_GRAPH_URL"]
)
def test_production_refuses_http_providers(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} must use https"):
        _settings(monkeypatch, TRACKAI_ENCRYPTION_KEYS=REAL_KEY, **{name: "http://10.0.0.5"})


def test_production_starts_with_a_real_key_and_https(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, TRACKAI_ENCRYPTION_KEYS=REAL_KEY)
    assert settings.sandbox_providers == ()
