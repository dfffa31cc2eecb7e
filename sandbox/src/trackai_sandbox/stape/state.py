"""In-memory Stape of the fake: API keys per region, containers and their custom domains.

Container status is computed when read (created + ``ready_after_s`` = running), so a poller sees
the deploy progress without any background task. Memory is the right store for a fake.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Region = Literal["global", "eu"]

#: Every anonymizer key Stape's container form knows (stape-io/stape-mcp-server AnonymizerSchema).
ANONYMIZE_KEYS = (
    "sp_ip",
    "cid",
    "uid",
    "sid",
    "dl",
    "dr",
    "sct",
    "seg",
    "jid",
    "gjid",
    "ua",
    "uc",
    "je",
    "sr",
    "sd",
    "ul",
    "uaa",
    "uab",
    "uafvl",
    "uamb",
    "uam",
    "uap",
    "uapv",
    "uaw",
    "cm",
    "cs",
    "cn",
    "cc",
    "ci",
    "ck",
    "ccf",
    "cmt",
    "gclid",
    "dclid",
)

#: Zone type -> label; the fake's default host of a container is ``{identifier}.{type}.stape.io``.
ZONES: dict[str, str] = {
    "eu": "Europe",
    "us": "United States",
    "ap": "Asia Pacific",
    "jp": "Japan",
    "sa": "South America",
}


def stape_timestamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def option(type_: str, label: str | None = None) -> dict[str, str]:
    """Stape's ``{type, label}`` option objects (status, zone, record type...)."""
    return {"type": type_, "label": label or type_.replace("_", " ").capitalize()}


@dataclass
class Behaviour:
    """Switches the control API flips: how long a deploy takes, whether it ever finishes."""

    ready_after_s: float = 5.0
    never_running: bool = False
    verify_delay_s: float = 0.0
    pending_status: str = "deploying"
    running_status: str = "running"


@dataclass
class Domain:
    id: int
    identifier: str
    name: str
    target: str
    cdn_type: str | None = None
    use_cname_record: bool = True
    connection_type: str | None = None
    status: str = "pending"
    error: dict[str, str] | None = None
    verification_count: int = 0
    #: When a revalidation's outcome becomes visible (monotonic seconds).
    verified_at: float = 0.0
    outcome: tuple[str, dict[str, str] | None] | None = None

    def current(self, now: float) -> tuple[str, dict[str, str] | None]:
        if self.outcome is not None and now >= self.verified_at:
            return self.outcome
        return self.status, self.error

    def as_dict(self, now: float) -> dict[str, Any]:
        status, error = self.current(now)
        return {
            "id": self.id,
            "identifier": self.identifier,
            "name": self.name,
            "status": option(status),
            "error": error,
            "records": [
                {"type": option("CNAME", "CNAME"), "host": self.name, "value": self.target}
            ],
            "isBadDomain": False,
            "cdnType": self.cdn_type,
            "recordType": "CNAME" if self.use_cname_record else "A",
            "connectionType": self.connection_type,
            "cdnHostnameId": None,
            "verificationCount": self.verification_count,
            "disableVerification": False,
            "issuer": None,
            "sslCert": None,
            "sslKey": None,
        }


@dataclass
class Container:
    id: int
    identifier: str
    region: Region
    document: dict[str, Any]
    created_at: float = field(default_factory=time.time)
    created_mono: float = field(default_factory=time.monotonic)
    updated_at: float = field(default_factory=time.time)
    forced_status: dict[str, str] | None = None
    domains: dict[str, Domain] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.document["name"])

    @property
    def zone_type(self) -> str:
        return str(self.document["zone"]["type"])

    @property
    def stape_domain(self) -> str:
        return f"{self.identifier}.{self.zone_type}.stape.io"

    def status(self, behaviour: Behaviour, now: float) -> dict[str, str]:
        if self.forced_status is not None:
            return self.forced_status
        running = not behaviour.never_running and now - self.created_mono >= behaviour.ready_after_s
        return option(behaviour.running_status if running else behaviour.pending_status)

    def as_dict(self, behaviour: Behaviour, now: float) -> dict[str, Any]:
        zone = self.zone_type
        return {
            **self.document,
            "id": self.id,
            "identifier": self.identifier,
            "status": self.status(behaviour, now),
            "zone": {
                "type": zone,
                "label": ZONES.get(zone, zone),
                "ip": "34.0.0.1",
                "defaultDomain": f"{zone}.stape.io",
                "loadDomain": f"load.{zone}.stape.io",
            },
            "stapeDomain": self.stape_domain,
            "warnings": [],
            "createdAt": stape_timestamp(self.created_at),
            "updatedAt": stape_timestamp(self.updated_at),
        }


class StapeState:
    """Both regions of the fake Stape; a key belongs to exactly one of them."""

    def __init__(self) -> None:
        self.reset(Behaviour())

    def reset(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.keys: dict[str, Region] = {}
        self.containers: dict[tuple[Region, str], Container] = {}
        #: name -> answers ``[{type, data}]``; consulted before the Cloudflare fake.
        self.dns: dict[str, list[dict[str, str]]] = {}
        self._next_id = 1

    def next_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def new_container(self, region: Region, document: dict[str, Any]) -> Container:
        alphabet = string.ascii_lowercase
        identifier = "".join(secrets.choice(alphabet) for _ in range(7))
        container = Container(self.next_id(), identifier, region, document)
        self.containers[(region, identifier)] = container
        return container

    def new_domain(self, container: Container, name: str, body: dict[str, Any]) -> Domain:
        domain = Domain(
            id=self.next_id(),
            identifier=str(uuid.uuid4()),
            name=name,
            target=container.stape_domain,
            cdn_type=body.get("cdnType"),
            use_cname_record=bool(body.get("useCnameRecord", True)),
            connection_type=body.get("connectionType"),
        )
        container.domains[domain.identifier] = domain
        return domain

    def domain_named(self, region: Region, name: str) -> Domain | None:
        for (container_region, _), container in self.containers.items():
            if container_region != region:
                continue
            for domain in container.domains.values():
                if domain.name == name:
                    return domain
        return None
