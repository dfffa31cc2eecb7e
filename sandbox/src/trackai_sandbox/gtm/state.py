"""In-memory Tag Manager of the fake: accounts, containers, workspaces with their entities,
versions, the gallery of templates, OAuth tokens and per-project quota windows.

Entities are kept as the API's JSON dicts (camelCase), so what the fake stores is what a client
sent, plus the server-owned fields (ids, path, fingerprint, tagManagerUrl).
"""

from __future__ import annotations

import base64
import copy
import re
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

UI = "https://tagmanager.google.com/#/container"

#: Collection name in the URL -> (singular key in versions and list answers, id field).
KINDS: dict[str, tuple[str, str]] = {
    "variables": ("variable", "variableId"),
    "triggers": ("trigger", "triggerId"),
    "tags": ("tag", "tagId"),
    "templates": ("customTemplate", "templateId"),
}

#: Built-in variable type -> the name ``{{...}}`` references use.
BUILT_IN_NAMES: dict[str, str] = {
    "pageUrl": "Page URL",
    "pageHostname": "Page Hostname",
    "pagePath": "Page Path",
    "referrer": "Referrer",
    "event": "Event",
    "containerId": "Container ID",
    "containerVersion": "Container Version",
    "debugMode": "Debug Mode",
    "randomNumber": "Random Number",
    "environmentName": "Environment Name",
    "htmlId": "HTML ID",
    "eventName": "Event Name",
    "clientName": "Client Name",
    "queryString": "Query String",
    "requestMethod": "Request Method",
    "requestPath": "Request Path",
}
DEFAULT_BUILT_INS = {
    "web": ("pageUrl", "pageHostname", "pagePath", "referrer", "event"),
    "server": ("eventName", "clientName", "queryString", "requestPath", "requestMethod"),
}
#: Ids of GTM's built-in triggers (All Pages = 2147479553, Initialization, Consent...).
BUILT_IN_TRIGGER_MIN = 2147479553
_REFERENCE = re.compile(r"\{\{([^{}]+)\}\}")


class Fingerprints:
    """Fingerprints are modification times in ms; strictly increasing so every change differs."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last = max(self._last + 1, time.time_ns() // 1_000_000)
        return str(self._last)


@dataclass
class GalleryTemplate:
    owner: str
    repository: str
    name: str
    #: "web" or "server": the kind of container it can be imported into.
    context: str
    sha: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


@dataclass
class Workspace:
    workspace_id: str
    name: str
    description: str
    fingerprint: str
    entities: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    built_ins: list[str] = field(default_factory=list)


@dataclass
class Container:
    account_id: str
    container_id: str
    public_id: str
    document: dict[str, Any]
    fingerprint: str
    auth: str = field(default_factory=lambda: secrets.token_urlsafe(16)[:22])
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    live_version_id: str | None = None
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"accounts/{self.account_id}/containers/{self.container_id}"

    @property
    def context(self) -> str:
        usage = self.document.get("usageContext") or ["web"]
        return "server" if "server" in usage else "web"

    def next_id(self, counter: str) -> str:
        self.counters[counter] = self.counters.get(counter, 0) + 1
        return str(self.counters[counter])

    def as_dict(self) -> dict[str, Any]:
        answer = {
            **self.document,
            "path": self.path,
            "accountId": self.account_id,
            "containerId": self.container_id,
            "publicId": self.public_id,
            "fingerprint": self.fingerprint,
            "tagManagerUrl": f"{UI}/{self.path}?apiLink=container",
        }
        answer.setdefault("features", {})
        return answer

    def container_config(self) -> str:
        """The server container config string Stape asks for (base64 of id, env and auth)."""
        raw = f"id={self.public_id}&env=1&auth={self.auth}"
        return base64.b64encode(raw.encode()).decode()


@dataclass
class Account:
    account_id: str
    name: str
    fingerprint: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": f"accounts/{self.account_id}",
            "accountId": self.account_id,
            "name": self.name,
            "shareData": False,
            "fingerprint": self.fingerprint,
            "tagManagerUrl": f"https://tagmanager.google.com/#/admin/accounts/{self.account_id}",
            "features": {"supportUserPermissions": True, "supportMultipleContainers": True},
        }


class QuotaWindow:
    """Google's per-project limits: ``rate`` calls per ``window_s`` and a daily count."""

    def __init__(self) -> None:
        self.calls: deque[float] = deque()
        self.day_start = time.time()
        self.day_count = 0

    def admit(self, now: float, per_window: int, window_s: float, per_day: int) -> str | None:
        """None when admitted, else the name of the limit that was hit."""
        if now - self.day_start >= 86_400:
            self.day_start, self.day_count = now, 0
        if self.day_count >= per_day:
            return "Queries per day"
        while self.calls and self.calls[0] <= now - window_s:
            self.calls.popleft()
        if len(self.calls) >= per_window:
            return f"Queries per {window_s:g} seconds" if window_s != 60 else "Queries per minute"
        self.calls.append(now)
        self.day_count += 1
        return None


class GtmState:
    """Everything the fake Tag Manager holds."""

    def __init__(self) -> None:
        self.fingerprints = Fingerprints()
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.containers: dict[tuple[str, str], Container] = {}
        #: token -> Cloud project number; tokens not listed belong to the default project.
        self.token_projects: dict[str, str] = {}
        self.invalid_tokens: set[str] = set()
        self.quotas: dict[str, QuotaWindow] = {}
        self.gallery: dict[tuple[str, str], GalleryTemplate] = {}
        self._next_container = 200_000_001

    def add_account(self, account_id: str, name: str) -> Account:
        account = Account(account_id, name, self.fingerprints.next())
        self.accounts[account_id] = account
        return account

    def new_container(self, account_id: str, document: dict[str, Any]) -> Container:
        container_id = str(self._next_container)
        self._next_container += 1
        alphabet = string.ascii_uppercase + string.digits
        public_id = "GTM-" + "".join(secrets.choice(alphabet) for _ in range(7))
        container = Container(
            account_id, container_id, public_id, document, self.fingerprints.next()
        )
        self.containers[(account_id, container_id)] = container
        self.new_workspace(container, "Default Workspace", "")
        return container

    def new_workspace(self, container: Container, name: str, description: str) -> Workspace:
        workspace = Workspace(
            container.next_id("workspace"), name, description, self.fingerprints.next()
        )
        latest = self.latest_version(container)
        if latest is not None:
            for collection, (key, id_field) in KINDS.items():
                for entity in latest.get(key, []):
                    workspace.entities[collection][entity[id_field]] = copy.deepcopy(entity)
            workspace.built_ins = [b["type"] for b in latest.get("builtInVariable", [])]
        else:
            workspace.built_ins = list(DEFAULT_BUILT_INS[container.context])
        container.workspaces[workspace.workspace_id] = workspace
        return workspace

    @staticmethod
    def latest_version(container: Container) -> dict[str, Any] | None:
        if not container.versions:
            return None
        return container.versions[max(container.versions, key=int)]


def references(value: Any) -> set[str]:
    """Every ``{{Variable Name}}`` used anywhere inside an entity."""
    found: set[str] = set()
    if isinstance(value, str):
        found.update(m.strip() for m in _REFERENCE.findall(value))
    elif isinstance(value, dict):
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def compile_errors(container: Container, workspace: Workspace) -> list[str]:
    """What GTM's compiler refuses: unknown variables, triggers or custom templates."""
    ents = workspace.entities
    variables = {v["name"] for v in ents["variables"].values()}
    variables |= {BUILT_IN_NAMES.get(t, t) for t in workspace.built_ins}
    triggers = set(ents["triggers"])
    templates = set(ents["templates"])
    errors: list[str] = []
    for collection in ("tags", "triggers", "variables"):
        for entity in ents[collection].values():
            for name in sorted(references(entity) - variables):
                errors.append(f"{entity['name']}: unknown variable '{{{{{name}}}}}'")
            etype = str(entity.get("type", ""))
            if etype.startswith("cvt_"):
                match = re.fullmatch(rf"cvt_{container.container_id}_(\d+)", etype)
                if match is None or match[1] not in templates:
                    errors.append(f"{entity['name']}: unknown custom template type '{etype}'")
            for trigger_id in entity.get("firingTriggerId", []) + entity.get(
                "blockingTriggerId", []
            ):
                if trigger_id not in triggers and not (
                    trigger_id.isdigit() and int(trigger_id) >= BUILT_IN_TRIGGER_MIN
                ):
                    errors.append(f"{entity['name']}: unknown trigger id {trigger_id}")
    return errors
