"""/health does no I/O; /ready reports each check; errors never echo the request body."""

from __future__ import annotations

import asyncio

import httpx
from pydantic import BaseModel

from trackai_kit.http import create_app


async def _ok() -> None:
    return None


async def _broken() -> None:
    raise ConnectionRefusedError("connect to postgresql://app:pw@db:5432 refused")


async def _hangs() -> None:
    await asyncio.sleep(30)


def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")  # type: ignore[arg-type]


async def test_health_is_ok_even_when_dependencies_fail() -> None:
    app = create_app("svc", readiness=[("postgres", _broken)])
    async with _client(app) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": "svc"}


async def test_ready_200_when_every_check_passes() -> None:
    app = create_app("svc", readiness=[("postgres", _ok), ("rabbitmq", _ok)])
    async with _client(app) as client:
        response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["checks"] == {"postgres": "ok", "rabbitmq": "ok"}


async def test_ready_503_names_the_failing_check_and_times_out_hung_ones() -> None:
    app = create_app(
        "svc",
        readiness=[("postgres", _broken), ("rabbitmq", _hangs), ("cache", _ok)],
        readiness_timeout_s=0.2,
        expose_details=True,
    )
    async with _client(app) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["postgres"].startswith("ConnectionRefusedError: ")
    assert body["checks"]["rabbitmq"].startswith("TimeoutError")
    assert body["checks"]["cache"] == "ok"


async def test_production_keeps_errors_and_the_api_description_to_itself() -> None:
    app = create_app("svc", readiness=[("postgres", _broken), ("cache", _ok)])
    async with _client(app) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "failing", "cache": "ok"}
        assert "db:5432" not in ready.text
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
    development = create_app("svc", expose_details=True)
    async with _client(development) as client:
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/docs")).status_code == 200


class _Lead(BaseModel):
    email: str
    age: int


async def test_validation_errors_do_not_echo_the_body() -> None:
    app = create_app("svc")

    @app.post("/leads")
    async def create_lead(lead: _Lead) -> dict[str, str]:
        return {"ok": "yes"}

    async with _client(app) as client:
        response = await client.post("/leads", json={"email": "joao@example.com", "age": "old"})
    assert response.status_code == 422
    assert "joao@example.com" not in response.text
    assert "old" not in response.text
    assert response.json()["detail"][0]["loc"] == ["body", "age"]


async def test_unhandled_errors_become_a_bare_500() -> None:
    app = create_app("svc")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret joao@example.com")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error"}
