"""Monetizze: form-encoded postbacks with PHP-style keys (``venda[codigo]=...``) and a JSON copy of
the whole payload in the ``json`` field; the static ``chave_unica`` inside the payload; amounts in
reais as strings (``"197.00"``, or Brazil's ``"1.234,56"``); Brasília local times; one postback
per commission recipient (producer, affiliates, ...), each with the same sale and its gross value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from qs_codec import DecodeOptions, decode

from trackai_ingestion.domain.gateways.base import (
    GatewayAdapter,
    WebhookRequest,
)
from trackai_ingestion.domain.gateways.body import parse_json_object
from trackai_ingestion.domain.gateways.fields import (
    amount_from_units,
    brasilia_time,
    count_above_one,
    first_time,
    get_path,
    opt_object,
    opt_text,
    payment_method,
    require_text,
    status_from,
)
from trackai_ingestion.domain.gateways.people import (
    hashed_user_data,
    split_name,
    tracking_from,
)
from trackai_ingestion.domain.model import (
    Accept,
    CanonicalStatus,
    Conversion,
    Ignore,
    InvalidPayload,
    MalformedBody,
    PaymentMethod,
)

_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")

#: ``codigo_status`` -> status (Monetizze's postback documentation; the sale's ``venda.status``
#: names are the fallback). 5 "Bloqueada" (held for review) and codes not listed are ignored.
_STATUS_CODES = {
    "1": CanonicalStatus.PENDING_PAYMENT,  # Aguardando pagamento (boleto/pix generated)
    "2": CanonicalStatus.APPROVED,  # Finalizada
    "3": CanonicalStatus.CANCELED,  # Cancelada
    "4": CanonicalStatus.REFUNDED,  # Devolvida
    # Completa: the guarantee period is over; not a new purchase.
    "6": CanonicalStatus.COMPLETED,
    "7": CanonicalStatus.ABANDONED,  # Abandono de checkout
}
_STATUS_NAMES = {
    "aguardando pagamento": CanonicalStatus.PENDING_PAYMENT,
    "finalizada": CanonicalStatus.APPROVED,
    "aprovada": CanonicalStatus.APPROVED,
    "cancelada": CanonicalStatus.CANCELED,
    "devolvida": CanonicalStatus.REFUNDED,
    "completa": CanonicalStatus.COMPLETED,
    "abandono de checkout": CanonicalStatus.ABANDONED,
}
_METHODS = {
    "cartão de crédito": PaymentMethod.CREDIT_CARD,
    "cartao de credito": PaymentMethod.CREDIT_CARD,
    "boleto": PaymentMethod.BOLETO,
    "pix": PaymentMethod.PIX,
}
#: The form's limits: Monetizze's deepest key is 4 levels (``ecommerce_dados[dados_comprador]
#: [endereco_entrega][cep]``) and its longest list a few items; beyond these the form is refused.
_FORM = DecodeOptions(
    depth=8,
    strict_depth=True,
    parameter_limit=2000,
    list_limit=200,
    raise_on_limit_exceeded=True,
)
_BRAZILIAN_AMOUNT = re.compile(r"^\d{1,3}(\.\d{3})*,\d{1,4}$|^\d+,\d{1,4}$")


class MonetizzeAdapter(GatewayAdapter):
    name = "monetizze"
    display_name = "Monetizze"
    credential_location = (
        "Monetizze > Ferramentas > Postback (the account's chave única, shown above the list)"
    )
    other_media_types = frozenset({"application/x-www-form-urlencoded"})

    def authenticate(self, request: WebhookRequest, secret: str) -> None:
        self.check_body_secret(request, "chave_unica", secret, what="chave única")

    def parse(self, request: WebhookRequest) -> dict[str, Any]:
        """The payload, from the JSON copy in ``json`` when there is one, else the PHP-style form
        fields; a JSON body (a relay, a test tool) is read the same way."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = _form(request.raw) if content_type in self.other_media_types else request.body
        copy = body.get("json")
        if isinstance(copy, str) and copy.strip():
            try:
                return parse_json_object(copy.encode())
            except MalformedBody as exc:
                raise MalformedBody(f"the `json` field: {exc}") from None
        return body

    def interpret(self, body: Mapping[str, Any]) -> Accept | Ignore:
        order_id = opt_text(body, "venda.codigo") or require_text(body, "codigo_venda")
        code = opt_text(body, "codigo_status")
        name = opt_text(body, "venda.status")
        status = _STATUS_CODES.get(code) if code else status_from(_STATUS_NAMES, name)
        if status is None:
            what = f"codigo_status {code!r}" if code else f"status {name!r}"
            if code is None and name is None:
                raise InvalidPayload("codigo_status", "is required")
            return Ignore(f"unsupported monetizze sale {what}", order_id)
        event_time = first_time(
            brasilia_time(body, "venda.dataFinalizada", _FORMATS)
            if status is not CanonicalStatus.PENDING_PAYMENT
            else None,
            brasilia_time(body, "venda.dataInicio", _FORMATS),
        )
        if event_time is None:
            raise InvalidPayload("venda.dataInicio", "is required")
        buyer = opt_object(body, "comprador")
        first, last = split_name(opt_text(buyer, "nome"))
        conversion = Conversion(
            gateway=self.name,
            order_id=order_id,
            status=status,
            gateway_status=code or name or "",
            event_time=event_time,
            # The sale's gross value: every recipient's postback carries it (``valorRecebido``
            # is that recipient's commission).
            amount=_reais(body, "venda.valor"),
            currency="BRL",
            product_id=opt_text(body, "produto.codigo"),
            product_name=opt_text(body, "produto.nome"),
            payment_method=payment_method(_METHODS, opt_text(body, "venda.formaPagamento")),
            tracking=tracking_from(get_path(body, "venda")),
            client_ip=None,
            user_agent=None,
            user_data=hashed_user_data(
                email=get_path(buyer, "email"),
                phone=get_path(buyer, "telefone"),
                first_name=first,
                last_name=last,
                city=get_path(buyer, "cidade"),
                state=get_path(buyer, "estado"),
                zip_code=get_path(buyer, "cep"),
                country=opt_text(buyer, "pais") or self.default_country,
                birth_date=get_path(buyer, "data_nascimento"),
                date_order=self.date_order,
            ),
            renewal=count_above_one(get_path(body, "assinatura.parcela")),
        )
        return Accept(conversion)


def _form(raw: bytes) -> dict[str, Any]:
    """``application/x-www-form-urlencoded`` with PHP-style nested keys, as a JSON-like object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"form body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        parsed = decode(text, _FORM)
    except (ValueError, IndexError, TypeError, KeyError, RecursionError, OverflowError) as exc:
        raise MalformedBody(f"form body cannot be read: {str(exc)[:120]}") from None
    if not parsed:
        raise MalformedBody("body is neither a JSON object nor a form with fields")
    # Through the one JSON parse step, so the form's values meet the same checks (NUL, lone
    # surrogates, depth) as any JSON body.
    return parse_json_object(json.dumps(parsed).encode())


def _reais(body: Mapping[str, Any], path: str) -> Decimal | None:
    """Reais as Monetizze writes them: ``"197.00"``, and Brazil's ``"1.234,56"`` form too."""
    value = get_path(body, path)
    if isinstance(value, str) and _BRAZILIAN_AMOUNT.fullmatch(value.strip()):
        plain = value.strip().replace(".", "").replace(",", ".")
        try:
            return amount_from_units({"amount": plain}, "amount")
        except InvalidPayload as exc:
            raise InvalidPayload(path, exc.detail) from None
    return amount_from_units(body, path)
