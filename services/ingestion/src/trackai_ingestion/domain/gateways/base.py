"""The interface every checkout-gateway adapter implements.

An adapter authenticates a request on its raw bytes and turns the parsed body into an
:class:`~trackai_ingestion.domain.model.Interpretation`; it does no I/O. The helpers adapters
share live beside this module: ``signatures`` (secrets and HMACs), ``fields`` (reading values,
amounts, times) and ``people`` (buyer data and tracking).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from trackai_ingestion.domain.gateways.body import parse_json_object
from trackai_ingestion.domain.gateways.signatures import secrets_match
from trackai_ingestion.domain.model import (
    Accept,
    AuthenticationFailed,
    Ignore,
    MalformedBody,
)
from trackai_kit.pii import DateOrder


class WebhookRequest:
    """What arrived: the raw bytes (authenticated as is), headers (lower-case names), query.

    ``query`` is every (name, value) pair in order, so a repeated parameter stays visible.
    """

    def __init__(
        self,
        raw: bytes,
        headers: Mapping[str, str],
        query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        self.raw = raw
        self.headers = {name.lower(): value for name, value in headers.items()}
        pairs = query.items() if isinstance(query, Mapping) else (query or ())
        self.query_items = [(str(name), str(value)) for name, value in pairs]
        self._parsed: dict[str, Any] | MalformedBody | None = None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header; repeated header lines arrive joined by commas (RFC 9110)."""
        value = self.headers.get(name.lower())
        if value is None:
            return []
        return [item.strip() for item in value.split(",") if item.strip()]

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter, in order."""
        return [value for key, value in self.query_items if key == name]

    @property
    def body(self) -> dict[str, Any]:
        """The checked JSON object (:func:`~.body.parse_json_object`), parsed once; decimals stay
        exact (``Decimal``). Raises :class:`MalformedBody`, and nothing else."""
        if self._parsed is None:
            try:
                self._parsed = parse_json_object(self.raw)
            except MalformedBody as exc:
                self._parsed = exc
        if isinstance(self._parsed, MalformedBody):
            raise self._parsed
        return self._parsed


class GatewayAdapter(ABC):
    """One checkout platform: how it authenticates, and how its payloads read.

    Adding a platform is one subclass in its own module, registered in
    :data:`trackai_ingestion.domain.gateways.ADAPTERS`, plus its tests.
    """

    #: URL slug (``/api/v1/webhooks/<name>/...``) and the ``gateway`` of its conversions.
    name: ClassVar[str]
    display_name: ClassVar[str]
    #: Where the operator finds the secret to store, quoted in 401 answers.
    credential_location: ClassVar[str]
    #: Media types accepted besides JSON (Monetizze posts a form), read by :meth:`parse`.
    other_media_types: ClassVar[frozenset[str]] = frozenset()
    #: The buyer's country when the payload names none: ``"br"`` only for a gateway that sells
    #: in Brazil only; None for one with international checkouts (then a phone number without a
    #: country code is not read at all). Per gateway in docs/emq.md.
    default_country: ClassVar[str | None] = "br"
    #: How the gateway writes a birth date whose day and month could be swapped.
    date_order: ClassVar[DateOrder] = "dmy"

    @abstractmethod
    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        """Raise :class:`AuthenticationFailed` unless the request carries ``secret``."""

    @abstractmethod
    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        """Normalise the parsed body; raise :class:`InvalidPayload` naming the bad field."""

    def parse(self, request: WebhookRequest) -> dict[str, Any]:
        """The body as an object (JSON for most gateways; Monetizze overrides it for its form
        encoding). Raises :class:`MalformedBody`."""
        return request.body

    def check_body_secret(
        self, request: WebhookRequest, key: str, secret: str, *, what: str
    ) -> None:
        """For gateways that put a static secret in the body (Perfect Pay, Cakto, ...): the body
        is parsed to read it, and nothing else of it is looked at before it matches."""
        received = self.parse(request).get(key)
        credential = f"{self.name}_{key}"
        if not isinstance(received, str) or not received:
            raise AuthenticationFailed(
                credential,
                f"missing `{key}` in the {self.display_name} payload: {self.display_name} sends "
                f"its {what} in the body; check that this URL is configured as a "
                f"{self.display_name} webhook",
            )
        if not secrets_match(received.strip(), secret):
            raise AuthenticationFailed(
                credential,
                f"{self.display_name} {key} does not match the {what} stored for this tenant; "
                f"copy it from {self.credential_location}",
            )

    def fix_hint(self, tenant_id: str) -> str:
        """The command that stores the right secret, for 401 messages."""
        return (
            f"store it with `trackai tenant set-gateway {tenant_id} --gateway {self.name} "
            "--secret-file -` (the secret on standard input)"
        )
