"""Meta Graph API calls of the saga: debug_token (app token), the pixel lookup (customer token) and
the test event publishing requires. Tokens travel in headers/params only, never in messages.
"""

from __future__ import annotations

from typing import Any

import httpx

from trackai_provisioner.domain.provisioning import ActionableError, TransientProviderError
from trackai_provisioner.service_layer.ports import PixelInfo, TestEventResult, TokenInfo

_TRANSIENT_CODES = {1, 2, 4, 17, 341, 613}


class GraphError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: code {error.get('code')}/{error.get('error_subcode')}")
        self.status = status
        self.code = int(error.get("code") or 0)
        self.subcode = int(error.get("error_subcode") or 0)
        self.transient = bool(error.get("is_transient")) or self.code in _TRANSIENT_CODES
        self.message = str(error.get("message", ""))


class MetaGraph:
    def __init__(
        self,
        base_url: str,
        version: str,
        app_token: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._version = version
        self._app_token = app_token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            resp = await self._http.request(
                method,
                f"/{self._version}/{path}",
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"Meta Graph API unreachable ({type(exc).__name__}); re-run to retry"
            ) from exc
        data: dict[str, Any] = resp.json() if resp.content else {}
        if resp.status_code >= 400 or "error" in data:
            error = data.get("error") or {}
            if resp.status_code >= 500 and not error:
                raise TransientProviderError(f"Meta answered HTTP {resp.status_code}; re-run")
            raise GraphError(resp.status_code, error)
        return data

    async def debug_token(self, token: str) -> TokenInfo:
        if not self._app_token:
            raise ActionableError(
                "META_APP_TOKEN is not set, so the customer's token cannot be inspected",
                "set META_APP_TOKEN to the app access token 'app_id|app_secret' of the Meta app",
            )
        try:
            data = await self._call(
                "GET", "debug_token", self._app_token, params={"input_token": token}
            )
        except GraphError as exc:
            if exc.code == 190:
                raise ActionableError(
                    "Meta rejected META_APP_TOKEN (code 190)",
                    "set META_APP_TOKEN to a valid 'app_id|app_secret' of the Meta app",
                ) from exc
            raise _graph_failure("debug_token", exc) from exc
        info = data.get("data") or {}
        err = info.get("error") or {}
        return TokenInfo(
            is_valid=bool(info.get("is_valid")),
            scopes=tuple(info.get("scopes") or ()),
            expires_at=int(info.get("expires_at") or 0),
            error=str(err.get("message", "")),
        )

    async def get_pixel(self, pixel_id: str, token: str) -> PixelInfo:
        try:
            data = await self._call(
                "GET", pixel_id, token, params={"fields": "id,name,last_fired_time,is_unavailable"}
            )
        except GraphError as exc:
            if exc.code == 100 and exc.subcode == 33:
                raise ActionableError(
                    f"pixel {pixel_id} does not exist or the stored access token cannot reach it "
                    "(Meta code 100/33)",
                    "check the pixel (dataset) id in Events Manager and generate the Conversions "
                    "API token from that pixel's settings, then `trackai tenant set-meta`",
                ) from exc
            if exc.code == 190:
                raise ActionableError(
                    "the stored Meta access token is invalid or expired (code 190)",
                    "generate a new token in Events Manager → Settings → Conversions API and "
                    "store it with `trackai tenant set-meta`",
                ) from exc
            raise _graph_failure("pixel lookup", exc) from exc
        return PixelInfo(
            id=str(data.get("id", pixel_id)),
            name=str(data.get("name", "")),
            is_unavailable=bool(data.get("is_unavailable", False)),
        )

    async def send_test_event(
        self, pixel_id: str, token: str, event: dict[str, Any], test_event_code: str
    ) -> TestEventResult:
        try:
            data = await self._call(
                "POST",
                f"{pixel_id}/events",
                token,
                body={"data": [event], "test_event_code": test_event_code},
            )
        except GraphError as exc:
            raise _graph_failure("test event", exc) from exc
        return TestEventResult(
            events_received=int(data.get("events_received", 0)),
            fbtrace_id=str(data.get("fbtrace_id", "")),
        )


def _graph_failure(what: str, exc: GraphError) -> Exception:
    if exc.transient or exc.status >= 500:
        return TransientProviderError(f"Meta {what} failed transiently ({exc}); re-run to retry")
    return ActionableError(
        f"Meta refused the {what} ({exc}: {exc.message})",
        "check the Meta app, pixel and token in Events Manager; the code is documented in "
        "Meta's Graph API error reference",
    )
