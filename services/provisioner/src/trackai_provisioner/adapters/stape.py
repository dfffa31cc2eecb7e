"""Stape API v2 over httpx (Stape ships no Python SDK): containers, their custom domains and the
domain revalidation. Answers are wrapped in ``{"body": ...}``; the key goes in ``X-AUTH-TOKEN``.
"""

from __future__ import annotations

from typing import Any

import httpx

from trackai_provisioner.domain.provisioning import ActionableError, TransientProviderError
from trackai_provisioner.service_layer.ports import DnsRecord, StapeContainer, StapeDomain

API = "/api/v2"


def _label(value: Any) -> str:
    """Stape statuses and record types come as ``{"type", "label"}`` objects or plain strings."""
    if isinstance(value, dict):
        return str(value.get("type") or value.get("label") or "")
    return "" if value is None else str(value)


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("label") or value.get("type") or "")
    return "" if value is None else str(value)


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "data", "containers", "domains"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return []


def _container(data: dict[str, Any]) -> StapeContainer:
    return StapeContainer(
        identifier=str(data.get("identifier") or data.get("id")),
        name=str(data.get("name", "")),
        status=_label(data.get("status")),
        stape_domain=str(data.get("stapeDomain") or data.get("domain") or ""),
    )


def _domain(data: dict[str, Any]) -> StapeDomain:
    return StapeDomain(
        identifier=str(data.get("identifier") or data.get("id")),
        name=str(data.get("name", "")),
        status=_label(data.get("status")),
        error=_error_text(data.get("error")),
        records=tuple(
            DnsRecord(
                type=_label(r.get("type")).upper(),
                host=str(r.get("host", "")),
                value=str(r.get("value", "")),
            )
            for r in data.get("records") or []
        ),
    )


class StapeApi:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 20.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._host = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._host,
            timeout=timeout_s,
            transport=transport,
            headers={"X-AUTH-TOKEN": api_key, "Accept": "application/json"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        try:
            resp = await self._http.request(method, API + path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise TransientProviderError(
                f"Stape API unreachable at {self._host} ({type(exc).__name__}); re-run to retry"
            ) from exc
        if missing_ok and resp.status_code == 404:
            return None
        if resp.status_code in (401, 403):
            raise ActionableError(
                f"Stape refused STAPE_API_KEY at {self._host} (HTTP {resp.status_code}): the key "
                "is wrong, revoked, or belongs to the other region (keys work only in theirs)",
                "copy the key from Stape → Account → API, and set STAPE_API_URL to its region's "
                "host: https://api.app.stape.io (global) or https://api.app.eu.stape.io (EU)",
            )
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientProviderError(
                f"Stape answered HTTP {resp.status_code} on {method} {path}; re-run to resume"
            )
        data = resp.json() if resp.content else {}
        if resp.status_code >= 400:
            raise StapeRequestError(resp.status_code, data)
        return data.get("body") if isinstance(data, dict) and "body" in data else data

    async def _pages(self, path: str) -> list[dict[str, Any]]:
        """Every item of a list endpoint: a bare list is one page; an ``{items, total}`` page is
        followed with ``page`` until ``total`` items were read or a page comes back empty."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = await self._call("GET", path, params={"page": page})
            items = _items(body)
            out.extend(items)
            total = body.get("total") if isinstance(body, dict) else None
            if not isinstance(total, int) or not items or len(out) >= total or page >= 1000:
                return out
            page += 1

    async def find_container(self, name: str) -> StapeContainer | None:
        for item in await self._pages("/containers"):
            if item.get("name") == name:
                return _container(item)
        return None

    async def create_container(self, body: dict[str, Any]) -> StapeContainer:
        try:
            return _container(await self._call("POST", "/containers", json=body))
        except StapeRequestError as exc:
            raise ActionableError(
                f"Stape refused the new container: {exc.summary()}",
                "check STAPE_CONTAINER_ZONE / STAPE_CONTAINER_PLAN and the account's plan limits "
                "in Stape's dashboard, then re-run",
            ) from exc

    async def anonymize_keys(self) -> tuple[str, ...]:
        """Every anonymizer option the container form knows (the create body must list all)."""
        groups = await self._call("GET", "/resources/container-anonymize-options")
        return tuple(
            str(item["name"])
            for group in groups or []
            for item in group.get("items") or []
            if item.get("name")
        )

    async def get_container(self, identifier: str) -> StapeContainer:
        return _container(await self._call("GET", f"/containers/{identifier}"))

    async def delete_container(self, identifier: str) -> None:
        await self._call("DELETE", f"/containers/{identifier}", missing_ok=True)

    async def find_domain(self, container: str, name: str) -> StapeDomain | None:
        for item in await self._pages(f"/containers/{container}/domains"):
            if str(item.get("name", "")).lower() == name.lower():
                return _domain(item)
        return None

    async def add_domain(self, container: str, name: str) -> StapeDomain:
        body = {"name": name, "cdnType": "stape", "useCnameRecord": True}
        try:
            return _domain(await self._call("POST", f"/containers/{container}/domains", json=body))
        except StapeRequestError as exc:
            if exc.status == 409:
                found = await self.find_domain(container, name)
                if found is not None:
                    return found
            raise ActionableError(
                f"Stape refused the custom domain {name}: {exc.summary()}",
                "remove the domain from any other Stape container that holds it, then re-run",
            ) from exc

    async def get_domain(self, container: str, domain: str) -> StapeDomain:
        return _domain(await self._call("GET", f"/containers/{container}/domains/{domain}"))

    async def revalidate_domain(self, container: str, domain: str) -> StapeDomain:
        data = await self._call("POST", f"/containers/{container}/domains/{domain}/revalidate")
        if isinstance(data, dict) and data.get("identifier"):
            return _domain(data)
        return await self.get_domain(container, domain)

    async def delete_domain(self, container: str, domain: str) -> None:
        await self._call("DELETE", f"/containers/{container}/domains/{domain}", missing_ok=True)


class StapeRequestError(Exception):
    """A 4xx other than auth: validation errors name their fields."""

    def __init__(self, status: int, data: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.data = data

    def summary(self) -> str:
        body = self.data.get("body") if isinstance(self.data, dict) else None
        if isinstance(body, dict) and isinstance(body.get("errors"), dict):
            fields = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in body["errors"].items())
            return f"HTTP {self.status}, {fields}"
        error = self.data.get("error") if isinstance(self.data, dict) else None
        if isinstance(error, dict):
            return f"HTTP {self.status}, {error.get('code', '')} {error.get('message', '')}".strip()
        return f"HTTP {self.status}"
