"""Meta's Graph API over httpx: ``debug_token`` with the app token, and the pixel node read with
the seller's token. The base URL is a setting (the sandbox fake in tests and locally)."""

from __future__ import annotations

from typing import Any

import httpx

from trackai_agent.domain.model import DependencyError, PixelRead, TokenDebug


class HttpxMetaGraph:
    def __init__(
        self, base_url: str, api_version: str, app_token: str, timeout_s: float = 10.0
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._version = api_version
        self._app_token = app_token

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            answer = await self._http.get(f"/{self._version}/{path}", params=params)
        except httpx.HTTPError as exc:
            raise DependencyError("meta", f"{type(exc).__name__}") from None
        if answer.status_code >= 500:
            raise DependencyError("meta", f"HTTP {answer.status_code}")
        try:
            body = answer.json()
        except ValueError:
            raise DependencyError("meta", f"HTTP {answer.status_code} sem JSON") from None
        return answer.status_code, body if isinstance(body, dict) else {}

    async def debug_token(self, token: str) -> TokenDebug:
        _, body = await self._get(
            "debug_token", {"input_token": token, "access_token": self._app_token}
        )
        if "error" in body and "data" not in body:
            # The app token itself was refused: our configuration, not the seller's.
            raise DependencyError("meta", f"debug_token recusado ({body['error'].get('message')})")
        data = body.get("data") or {}
        error = data.get("error") or {}
        return TokenDebug(
            is_valid=bool(data.get("is_valid")),
            app_id=str(data.get("app_id") or ""),
            application=str(data.get("application") or ""),
            type=str(data.get("type") or ""),
            scopes=tuple(str(s) for s in data.get("scopes") or ()),
            expires_at=int(data.get("expires_at") or 0),
            error_code=error.get("code"),
            error_subcode=error.get("subcode"),
            error_message=str(error.get("message") or ""),
        )

    async def read_pixel(self, pixel_id: str, token: str) -> PixelRead:
        status, body = await self._get(pixel_id, {"fields": "id,name", "access_token": token})
        if status == 200 and "error" not in body:
            return PixelRead(True, name=str(body.get("name") or ""))
        error = body.get("error") or {}
        return PixelRead(
            False,
            error_code=error.get("code"),
            error_subcode=error.get("error_subcode"),
            error_message=str(error.get("message") or f"HTTP {status}"),
        )
