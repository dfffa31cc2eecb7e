"""SSRF-safe page fetching: every hop's host is resolved first and refused when any address is
private, loopback, link-local or otherwise not public; the connection goes to the address that
was checked (no second lookup to rebind), redirects are followed by hand with the same check,
and size and time are bounded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from cryptography import x509

from trackai_agent.domain.model import (
    DependencyError,
    FetchedPage,
    FetchRefused,
    Hop,
    TlsInfo,
)

_REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "TrackAI-SetupAgent/1.0 (+https://trackai.dev/agent)"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 2_000_000
    timeout_s: float = 10.0
    max_redirects: int = 5
    #: Local development and tests serve pages on 127.0.0.1; never set in production.
    allow_loopback: bool = False
    #: Extra CA bundle to trust (tests' own CA); empty uses the system store.
    ca_file: str = ""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str


class AddressGuard:
    """Resolves a URL's host and returns an address that is safe to connect to."""

    def __init__(self, allow_loopback: bool) -> None:
        self._allow_loopback = allow_loopback

    def refusal(self, address: str) -> str | None:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip.is_loopback:
            return None if self._allow_loopback else "o endereço é local (loopback)"
        if ip.is_link_local:
            return "o endereço é link-local (por exemplo metadados de nuvem)"
        if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
            return "o endereço é de rede privada, não público"
        if not ip.is_global:
            return "o endereço não é público"
        return None

    async def resolve(self, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchRefused("só endereços http:// ou https:// podem ser verificados")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror:
            raise DependencyError(parts.hostname, "o domínio não existe no DNS") from None
        addresses = sorted({str(info[4][0]) for info in infos})
        for address in addresses:
            why = self.refusal(address)
            if why is not None:
                raise FetchRefused(f"{parts.hostname} aponta para {address}: {why}")
        return Target(parts.scheme, parts.hostname, port, addresses[0])


def _tls_context(ca_file: str, verify: bool) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


class SafeFetcher:
    """:class:`PageFetcher` over httpx with the guard applied to every hop."""

    def __init__(self, limits: FetchLimits) -> None:
        self._limits = limits
        self._guard = AddressGuard(limits.allow_loopback)

    @property
    def guard(self) -> AddressGuard:
        return self._guard

    async def fetch(self, url: str) -> FetchedPage:
        try:
            async with asyncio.timeout(self._limits.timeout_s):
                return await self._follow(url)
        except TimeoutError:
            raise DependencyError(
                urlsplit(url).hostname or url,
                f"sem resposta em {self._limits.timeout_s:.0f} s",
            ) from None

    async def _tls(self, target: Target) -> TlsInfo:
        """Certificate validity (a verified handshake) and expiry (read without verifying)."""
        loop_timeout = self._limits.timeout_s
        not_after: datetime | None = None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.address,
                    target.port,
                    ssl=_tls_context("", verify=False),
                    server_hostname=target.host,
                ),
                loop_timeout,
            )
            ssl_object = writer.get_extra_info("ssl_object")
            der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
            writer.close()
            if der:
                not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
        except (OSError, ValueError):
            not_after = None
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    target.address,
                    target.port,
                    ssl=_tls_context(self._limits.ca_file, verify=True),
                    server_hostname=target.host,
                ),
                loop_timeout,
            )
            writer.close()
        except ssl.SSLCertVerificationError as exc:
            return TlsInfo(False, not_after, exc.verify_message or str(exc))
        except (OSError, ssl.SSLError) as exc:
            return TlsInfo(False, not_after, type(exc).__name__)
        return TlsInfo(True, not_after)

    async def _follow(self, url: str) -> FetchedPage:
        hops: list[Hop] = []
        tls: TlsInfo | None = None
        verify: ssl.SSLContext = _tls_context(self._limits.ca_file, verify=True)
        async with httpx.AsyncClient(
            verify=verify, follow_redirects=False, timeout=self._limits.timeout_s
        ) as client:
            current = url
            for _ in range(self._limits.max_redirects + 1):
                target = await self._guard.resolve(current)
                if target.scheme == "https" and tls is None:
                    tls = await self._tls(target)
                    if not tls.valid:
                        return FetchedPage(current, 0, tuple(hops), "", 0.0, tls)
                started = time.perf_counter()
                try:
                    response = await client.send(self._pinned(client, current, target), stream=True)
                except httpx.HTTPError as exc:
                    raise DependencyError(target.host, _describe(exc)) from None
                ttfb_ms = (time.perf_counter() - started) * 1000
                try:
                    location = response.headers.get("location", "")
                    hops.append(Hop(current, response.status_code, location))
                    if response.status_code in _REDIRECTS and location:
                        current = urljoin(current, location)
                        continue
                    body, truncated = await self._read(response)
                finally:
                    await response.aclose()
                return FetchedPage(
                    current, response.status_code, tuple(hops), body, ttfb_ms, tls, truncated
                )
        raise FetchRefused(f"mais de {self._limits.max_redirects} redirecionamentos")

    def _pinned(self, client: httpx.AsyncClient, url: str, target: Target) -> httpx.Request:
        parts = urlsplit(url)
        host = f"[{target.address}]" if ":" in target.address else target.address
        pinned = urlunsplit(parts._replace(netloc=f"{host}:{target.port}"))
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
        return client.build_request(
            "GET",
            pinned,
            headers={"Host": host_header, "User-Agent": USER_AGENT},
            extensions={"sni_hostname": target.host},
        )

    async def _read(self, response: httpx.Response) -> tuple[str, bool]:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= self._limits.max_bytes:
                return b"".join(chunks)[: self._limits.max_bytes].decode(
                    response.encoding or "utf-8", "replace"
                ), True
        return b"".join(chunks).decode(response.encoding or "utf-8", "replace"), False


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "a conexão foi recusada"
    if isinstance(exc, httpx.TimeoutException):
        return "o servidor demorou demais para responder"
    return type(exc).__name__
