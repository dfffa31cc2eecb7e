"""Cloudflare DNS through the official ``cloudflare`` SDK (httpx-based, ``base_url`` for the
sandbox), throttled under the 1,200 calls / 5 minutes per token limit.

The SDK retries POSTs itself, so a create may come back "already exists" (81053/81057/81058) after
its own first try succeeded: that case is answered with the record found by a lookup.
"""

from __future__ import annotations

from typing import Any

import cloudflare

from trackai_provisioner.adapters.throttle import SlidingWindow
from trackai_provisioner.domain.provisioning import ActionableError, TransientProviderError
from trackai_provisioner.service_layer.ports import CnameRecord

EXISTS_CODES = {81053, 81057, 81058}
AUTH_CODES = {9106, 9109, 10000, 10001}
ZONE_CODES = {1001, 1003, 7003, 7000}
#: Cloudflare allows 1,200 per 5 minutes; stay a little under it for other tools on the token.
CALLS_PER_WINDOW = 1100
WINDOW_S = 300.0


def _codes(exc: cloudflare.APIStatusError) -> set[int]:
    body = exc.body if isinstance(exc.body, dict) else {}
    return {int(e.get("code", 0)) for e in body.get("errors") or [] if isinstance(e, dict)}


def _record(data: Any) -> CnameRecord:
    return CnameRecord(
        id=str(data.id),
        name=str(data.name),
        content=str(getattr(data, "content", "") or ""),
        proxied=bool(getattr(data, "proxied", False)),
        type=str(data.type),
    )


class CloudflareDns:
    def __init__(
        self,
        base_url: str,
        api_token: str,
        zone_id: str,
        *,
        limiter: SlidingWindow | None = None,
        max_retries: int = 2,
        timeout_s: float = 20.0,
    ) -> None:
        self._zone = zone_id
        self._client = cloudflare.AsyncCloudflare(
            api_token=api_token or "unset",
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout_s,
        )
        self._limit = limiter or SlidingWindow(CALLS_PER_WINDOW, WINDOW_S)

    async def aclose(self) -> None:
        await self._client.close()

    def _fail(self, exc: Exception, what: str) -> Exception:  # noqa: PLR0911 - one per cause
        """The saga error for a Cloudflare failure: auth, zone, rate, outage, or refusal."""
        if isinstance(exc, cloudflare.APIStatusError):
            codes = _codes(exc)
            if exc.status_code in (401, 403) or codes & AUTH_CODES:
                return ActionableError(
                    f"Cloudflare refused CLOUDFLARE_API_TOKEN while trying to {what} "
                    f"(HTTP {exc.status_code}, codes {sorted(codes)})",
                    "create an API token with Zone → DNS → Edit on the zone of CF_BASE_DOMAIN "
                    "and set CLOUDFLARE_API_TOKEN",
                )
            if exc.status_code == 404 or codes & ZONE_CODES:
                return ActionableError(
                    f"Cloudflare does not know zone {self._zone!r} for this token while trying "
                    f"to {what} (codes {sorted(codes)})",
                    "copy the Zone ID from the Cloudflare dashboard (domain overview, right "
                    "column) of the CF_BASE_DOMAIN zone into CLOUDFLARE_ZONE_ID",
                )
            if exc.status_code == 429:
                return TransientProviderError(
                    "Cloudflare rate limit reached (1,200 calls per 5 minutes per token): wait "
                    "five minutes, then re-run to resume"
                )
            if exc.status_code >= 500:
                return TransientProviderError(
                    f"Cloudflare answered HTTP {exc.status_code} while trying to {what}; re-run"
                )
            return ActionableError(
                f"Cloudflare refused to {what} (HTTP {exc.status_code}, codes {sorted(codes)})",
                "check the record in the Cloudflare dashboard; the codes are listed in "
                "Cloudflare's API error reference",
            )
        if isinstance(exc, cloudflare.APIConnectionError):
            return TransientProviderError(f"Cloudflare unreachable while trying to {what}; re-run")
        return exc

    async def check_zone(self, base_domain: str) -> None:
        await self._limit.acquire()
        try:
            zone = await self._client.zones.get(zone_id=self._zone)
        except cloudflare.APIError as exc:
            raise self._fail(exc, "read the zone") from exc
        if zone is None:
            raise ActionableError(
                f"Cloudflare zone {self._zone!r} could not be read",
                "check CLOUDFLARE_ZONE_ID and the token's Zone → Read permission",
            )
        base = base_domain.lower().rstrip(".")
        if base != zone.name and not base.endswith("." + zone.name):
            raise ActionableError(
                f"CLOUDFLARE_ZONE_ID is zone {zone.name!r}, which cannot hold names under "
                f"CF_BASE_DOMAIN {base!r}",
                f"set CLOUDFLARE_ZONE_ID to the zone of {base!r}, or CF_BASE_DOMAIN to a name "
                f"inside {zone.name!r}",
            )

    async def find_records(self, name: str) -> list[CnameRecord]:
        out: list[CnameRecord] = []
        await self._limit.acquire()
        try:
            async for record in self._client.dns.records.list(
                zone_id=self._zone, name={"exact": name}
            ):
                out.append(_record(record))
        except cloudflare.APIError as exc:
            raise self._fail(exc, f"look up {name}") from exc
        return out

    async def create_cname(self, name: str, content: str, comment: str) -> CnameRecord:
        await self._limit.acquire()
        try:
            created = await self._client.dns.records.create(
                zone_id=self._zone,
                type="CNAME",
                name=name,
                content=content,
                ttl=1,
                proxied=False,
                comment=comment,
            )
        except cloudflare.APIStatusError as exc:
            if not _codes(exc) & EXISTS_CODES:
                raise self._fail(exc, f"create the CNAME {name}") from exc
            created = None
        except cloudflare.APIError as exc:
            raise self._fail(exc, f"create the CNAME {name}") from exc
        if created is not None:
            return _record(created)
        # "Already exists" (or a 200 with success:false, which the SDK turns into None): the
        # record is whatever the lookup finds; the caller compares its content.
        for record in await self.find_records(name):
            return record
        raise TransientProviderError(f"Cloudflare did not create {name} and has no such record")

    async def delete_record(self, record_id: str) -> None:
        await self._limit.acquire()
        try:
            await self._client.dns.records.delete(dns_record_id=record_id, zone_id=self._zone)
        except cloudflare.NotFoundError:
            return
        except cloudflare.APIStatusError as exc:
            if _codes(exc) & {81044}:  # record does not exist
                return
            raise self._fail(exc, f"delete DNS record {record_id}") from exc
        except cloudflare.APIError as exc:
            raise self._fail(exc, f"delete DNS record {record_id}") from exc
