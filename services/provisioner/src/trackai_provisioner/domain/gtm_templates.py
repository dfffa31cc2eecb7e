"""GTM container templates kept in the repository (``templates/gtm/*.json``): placeholders
``${name}`` are filled per tenant/funnel; trigger references by name and gallery template keys are
remapped to the ids GTM assigns when the entities are created (GTM has no "import JSON" call).

GTM's own ``{{Variable}}`` references pass through untouched.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")
GALLERY_PREFIX = "@gallery:"
KINDS = ("variables", "triggers", "tags")


class TemplateError(ValueError):
    """A template references a value the saga does not provide, or is malformed."""


@dataclass(frozen=True)
class GalleryRef:
    key: str
    owner: str
    repository: str


@dataclass(frozen=True)
class RenderedTemplate:
    name: str
    version: str
    usage_context: str
    gallery: tuple[GalleryRef, ...]
    #: Entity bodies by kind, in creation order; tags still carry ``firingTriggerNames`` and
    #: ``@gallery:<key>`` types until :func:`bind` maps them onto GTM ids.
    entities: dict[str, list[dict[str, Any]]]

    def fingerprint(self) -> str:
        """Stable digest of the rendered content, secrets masked: names the GTM version."""
        masked = {
            kind: [_masked(body) for body in bodies] for kind, bodies in self.entities.items()
        }
        blob = json.dumps([self.name, self.version, masked], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("secret"):
        return body
    out = copy.deepcopy(body)
    for param in out.get("parameter", []):
        param["value"] = "<secret>"
    return out


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise TemplateError(f"template placeholder ${{{key}}} has no value")
            return values[key]

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


def render(template: dict[str, Any], values: dict[str, str]) -> RenderedTemplate:
    """Fill every placeholder; an unknown one is an error, never an empty string."""
    try:
        filled = _fill(template, values)
        return RenderedTemplate(
            name=filled["template"],
            version=str(filled["template_version"]),
            usage_context=filled["usage_context"],
            gallery=tuple(GalleryRef(**g) for g in filled.get("gallery", [])),
            entities={kind: list(filled.get(kind, [])) for kind in KINDS},
        )
    except KeyError as exc:
        raise TemplateError(f"template lacks {exc.args[0]!r}") from exc


def bind(
    body: dict[str, Any], trigger_ids: dict[str, str], gallery_types: dict[str, str]
) -> dict[str, Any]:
    """The GTM API body of one entity: trigger names → ids, gallery keys → ``cvt_`` types."""
    out = {k: v for k, v in body.items() if k not in ("firingTriggerNames", "secret")}
    names = body.get("firingTriggerNames")
    if names is not None:
        missing = [n for n in names if n not in trigger_ids]
        if missing:
            raise TemplateError(f"tag {body['name']!r} fires on unknown trigger(s) {missing}")
        out["firingTriggerId"] = [trigger_ids[n] for n in names]
    kind = str(body.get("type", ""))
    if kind.startswith(GALLERY_PREFIX):
        key = kind.removeprefix(GALLERY_PREFIX)
        if key not in gallery_types:
            raise TemplateError(f"tag {body['name']!r} uses gallery template {key!r} not imported")
        out["type"] = gallery_types[key]
    return out


def differs(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """True when an existing entity's fields differ from the wanted body (ignoring GTM's own)."""
    return any(existing.get(key) != value for key, value in wanted.items())


def summary(body: dict[str, Any]) -> dict[str, Any]:
    """What a step stores about an entity: name and type, values only when not secret."""
    out: dict[str, Any] = {"name": body.get("name"), "type": body.get("type")}
    if not body.get("secret"):
        out["parameter"] = body.get("parameter", [])
    return out
