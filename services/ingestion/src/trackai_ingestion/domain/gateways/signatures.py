"""Gateway authentication helpers: constant-time secret comparison, HMAC signatures, and the
relay's timestamped ``X-Signature``."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from trackai_ingestion.domain.model import AuthenticationFailed

if TYPE_CHECKING:
    from trackai_ingestion.domain.gateways.base import (
        WebhookRequest,
    )


def secrets_match(received: str | bytes | None, expected: str) -> bool:
    """Constant-time comparison; a missing value never matches (nor does an empty secret)."""
    if received is None or not expected:
        return False
    # surrogatepass: odd text (a header decoded as Latin-1, a lone surrogate) compares unequal
    # instead of raising; the comparison itself never fails.
    given = received.encode("utf-8", "surrogatepass") if isinstance(received, str) else received
    return hmac.compare_digest(given, expected.encode("utf-8", "surrogatepass"))


def only_one(values: list[str], credential: str, what: str) -> str:
    """The one credential value a gateway sends (``values`` is not empty). Several are refused:
    each would be one more guess per request, and which one counts would be ambiguous."""
    if len(values) > 1:
        raise AuthenticationFailed(credential, f"{len(values)} {what}")
    return values[0]


def hmac_hex(algorithm: str, key: str, raw: bytes) -> str:
    return hmac.new(key.encode(), raw, algorithm).hexdigest()


def signature_matches(received: str | None, algorithm: str, key: str, raw: bytes) -> bool:
    """Whether ``received`` (hex, any case) is HMAC-``algorithm`` of ``raw`` under ``key``."""
    if received is None or not key:
        return False
    return secrets_match(received.strip().lower(), hmac_hex(algorithm, key, raw))


#: Seconds a timestamped relay signature stays valid, either side of our clock.
RELAY_SIGNATURE_TOLERANCE_S = 300


def relay_signature(signing_secret: str, raw: bytes, timestamp: int) -> str:
    """The ``X-Signature`` value a relay sends: ``t=<unix s>,v1=<hex HMAC-SHA256 of "<t>.<body>">``.

    The timestamp is inside the HMAC, so a captured delivery cannot be replayed once it is
    older than the tolerance, nor re-dated without the secret.
    """
    signed = str(timestamp).encode() + b"." + raw
    return f"t={timestamp},v1={hmac_hex('sha256', signing_secret, signed)}"


def verify_relay_signature(
    request: WebhookRequest,
    signing_secret: str,
    tenant_id: str,
    *,
    now: float,
    tolerance_s: float = RELAY_SIGNATURE_TOLERANCE_S,
    accept_legacy: bool = False,
) -> None:
    """The relay's ``X-Signature``, required when the tenant's gateway has a signing secret.

    ``t=<unix>,v1=<hex>`` (see :func:`relay_signature`) within ``tolerance_s`` of ``now``; the
    older ``sha256=<hex HMAC-SHA256 of the raw body>``, which replays forever, only with
    ``accept_legacy`` (INGESTION_LEGACY_RELAY_SIGNATURE).
    """
    # Eduzz's own signature travels in a header of the same name (bare hex): ours are the values
    # with a ``t=``/``v1=``/``sha256=`` prefix, so a relay in front of Eduzz sends both lines.
    values = request.header_values("x-signature")
    stamps = [v[2:].strip() for v in values if v[:2].lower() == "t="]
    v1 = [v[3:] for v in values if v[:3].lower() == "v1="]
    legacy = [v[7:] for v in values if v[:7].lower() == "sha256="]
    set_it = (
        "configure the relay with that secret, or remove it with `trackai tenant "
        f"set-gateway {tenant_id} ...` without --signing-secret-file"
    )
    if stamps or v1:
        if len(stamps) != 1 or not v1 or not stamps[0].isdigit():
            raise AuthenticationFailed(
                "x_signature",
                "malformed X-Signature: expected `t=<unix seconds>,v1=<hex HMAC-SHA256 of "
                '"<t>.<raw body>">` with exactly one t',
                reason="malformed",
            )
        age = now - int(stamps[0])
        if age > tolerance_s:
            raise AuthenticationFailed(
                "x_signature",
                f"stale X-Signature timestamp: signed {age:.0f} s ago, more than the "
                f"{tolerance_s:.0f} s accepted; the relay must sign each delivery when it sends "
                "it (check its clock)",
                reason="stale",
            )
        if -age > tolerance_s:
            raise AuthenticationFailed(
                "x_signature",
                f"X-Signature timestamp is {-age:.0f} s in the future, more than the "
                f"{tolerance_s:.0f} s accepted; check the relay's clock",
                reason="future",
            )
        signed = stamps[0].encode() + b"." + request.raw
        if not any(signature_matches(v, "sha256", signing_secret, signed) for v in v1):
            raise AuthenticationFailed(
                "x_signature",
                "X-Signature does not match the signing secret stored for this tenant and "
                'gateway (expected v1 = hex HMAC-SHA256 of "<t>.<raw body>"); check the relay\'s '
                f"key against `trackai tenant set-gateway {tenant_id} --signing-secret-file ...`",
            )
        return
    if legacy and not accept_legacy:
        raise AuthenticationFailed(
            "x_signature",
            "X-Signature `sha256=` has no timestamp, so anyone who saw one delivery could replay "
            'it: sign `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` instead '
            "(INGESTION_LEGACY_RELAY_SIGNATURE=true accepts the old form while relays migrate)",
            reason="legacy_refused",
        )
    if not legacy:
        raise AuthenticationFailed(
            "x_signature",
            "missing X-Signature header: this tenant has a signing secret for this gateway, so "
            "every webhook must carry `X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "
            f'"<t>.<raw body>">`; {set_it}',
            reason="missing",
        )
    if not any(signature_matches(v, "sha256", signing_secret, request.raw) for v in legacy):
        raise AuthenticationFailed(
            "x_signature",
            "X-Signature does not match the signing secret stored for this tenant and gateway "
            "(expected `sha256=<hex HMAC-SHA256 of the raw body>`); check the relay's key against "
            f"`trackai tenant set-gateway {tenant_id} --signing-secret-file ...`",
        )
