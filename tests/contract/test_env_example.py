"""`.env.example` documents every setting any process reads, and nothing that no process reads."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_CLASSES = [
    "trackai_ingestion.settings:Settings",
    "trackai_matcher.settings:Settings",
    "trackai_dispatcher.settings:Settings",
    "trackai_provisioner.settings:Settings",
    "trackai_agent.settings:Settings",
    "trackai_console.settings:Settings",
    "trackai_cli.core:CliSettings",
    "trackai_sandbox.settings:SandboxSettings",
    "trackai_sandbox.cloudflare:CloudflareFakeSettings",
    "trackai_sandbox.stape:StapeFakeSettings",
    "trackai_sandbox.gtm:GtmFakeSettings",
]
#: Identity of the process, fixed in code, not configuration.
NOT_SETTINGS = {"service_name"}
#: Inherited fields a process never reads (none today: every service serves HTTP and gRPC).
UNUSED: dict[str, set[str]] = {}


def _env_names(cls: type[BaseSettings], unused: set[str]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "") or ""
    names = set()
    for name, field in cls.model_fields.items():
        if name in NOT_SETTINGS or name in unused:
            continue
        names.add(field.alias if field.alias else f"{prefix}{name}".upper())
    return names


def _documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def _all_settings() -> set[str]:
    names: set[str] = set()
    for ref in SETTINGS_CLASSES:
        module, _, attr = ref.partition(":")
        names |= _env_names(getattr(importlib.import_module(module), attr), UNUSED.get(ref, set()))
    return names


def test_every_setting_is_documented_in_env_example() -> None:
    missing = _all_settings() - _documented()
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_env_example_documents_only_real_settings() -> None:
    unknown = _documented() - _all_settings()
    assert not unknown, f".env.example lists settings no process reads: {sorted(unknown)}"


def test_env_example_has_the_seed_fields() -> None:
    documented = _documented()
    for required in (
        "CF_BASE_DOMAIN",
        "SENTRY_DSN",
        "TRACKAI_ENCRYPTION_KEYS",
        "INGESTION_RATE_LIMIT_PER_MINUTE",
    ):
        assert required in documented
    assert any(n.startswith("GTM_") for n in documented)
    assert any(n.startswith("OTEL_") for n in documented)


def test_every_process_starts_from_env_example_as_is(tmp_path, monkeypatch) -> None:
    """Copying .env.example to .env must give a working local configuration."""
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    documented = _all_settings()
    for name in list(os.environ):
        if name in documented:
            monkeypatch.delenv(name)
    for ref in SETTINGS_CLASSES:
        module, _, attr = ref.partition(":")
        settings = getattr(importlib.import_module(module), attr)()
        assert settings.model_dump()
