"""The setup tools as use cases, with in-memory ports: what each answers before and after a
dependency fails. No network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trackai_agent.domain.model import DependencyError, SetupContext
from trackai_agent.service_layer.tools import SetupTools, ToolConfig


def context(**changes: Any) -> SetupContext:
    values: dict[str, Any] = {
        "tenant_id": "t1",
        "funnel_slug": "main",
        "landing_url": "https://loja.example/",
        "pixel_id": "1234567890",
        "meta_token": "EAAB-secret",
        "test_event_code": "TEST123",
        "gateways": ("kiwify",),
    }
    return SetupContext(**{**values, **changes})


@dataclass
class Registry:
    ctx: SetupContext = field(default_factory=context)
    down: bool = False

    async def context(self, tenant_id: str, funnel_slug: str) -> SetupContext:
        if self.down:
            raise DependencyError("provisioner", "UNAVAILABLE")
        return self.ctx


@dataclass
class Meta:
    calls: list[str] = field(default_factory=list)

    async def debug_token(self, token: str) -> Any:
        self.calls.append("debug_token")
        raise DependencyError("meta", "HTTP 503")


def tools(registry: Registry, meta: Meta) -> SetupTools:
    return SetupTools(
        registry,  # type: ignore[arg-type]
        webhooks=None,  # type: ignore[arg-type]
        meta=meta,  # type: ignore[arg-type]
        fetcher=None,  # type: ignore[arg-type]
        renderer=None,
        config=ToolConfig(meta_app_id="1", ingestion_public_url="https://in.example"),
    )


async def test_a_registry_that_cannot_answer_is_an_error_result_not_an_exception() -> None:
    meta = Meta()
    run = await tools(Registry(down=True), meta).run(
        "validate_meta_token",
        "t1",
        "main",
        {},
        setup_started_at=None,  # type: ignore[arg-type]
    )
    assert run.result.status == "error"
    assert run.result.details == {"reason": "dependency_unavailable", "dependency": "provisioner"}
    assert "cadastro do Track AI" in run.result.message
    assert meta.calls == []


async def test_meta_down_names_meta_for_the_seller() -> None:
    run = await tools(Registry(), Meta()).run(
        "validate_meta_token",
        "t1",
        "main",
        {},
        setup_started_at=None,  # type: ignore[arg-type]
    )
    assert run.result.details["dependency"] == "meta"
    assert "API do Meta" in run.result.message and "HTTP 503" in run.result.message


async def test_no_stored_token_is_said_before_meta_is_asked() -> None:
    meta = Meta()
    run = await tools(Registry(context(meta_token="")), meta).run(
        "validate_meta_token",
        "t1",
        "main",
        {},
        setup_started_at=None,  # type: ignore[arg-type]
    )
    assert run.result.details == {"reason": "not_configured"}
    assert meta.calls == []
    assert "EAAB-secret" not in repr(run)  # the token never leaks into a result
