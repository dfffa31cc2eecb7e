"""Google Tag Manager API v2 through ``google-api-python-client`` (its bundled discovery document,
so no network to build; ``api_endpoint`` points it at the sandbox). The client is synchronous, so
calls run one at a time in a worker thread, spaced by the project's 0.25 requests/s quota and
backed off on 403/429 rate answers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import google.auth.credentials
import google_auth_httplib2
import httplib2
from google.oauth2 import credentials as oauth_credentials
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from trackai_kit.logging import get_logger
from trackai_provisioner.adapters.throttle import SlidingWindow
from trackai_provisioner.domain.provisioning import ActionableError, TransientProviderError
from trackai_provisioner.service_layer.ports import GtmContainer, GtmEntity, GtmVersion

log = get_logger(__name__)

SCOPES = (
    "https://www.googleapis.com/auth/tagmanager.edit.containers",
    "https://www.googleapis.com/auth/tagmanager.edit.containerversions",
    "https://www.googleapis.com/auth/tagmanager.delete.containers",
    "https://www.googleapis.com/auth/tagmanager.publish",
)
_RATE_REASONS = {
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "quotaExceeded",
    "dailyLimitExceeded",
}
#: Entity kind → (collection method name, list response field).
_KINDS = {
    "variables": "variable",
    "triggers": "trigger",
    "tags": "tag",
    "templates": "template",
}
_ID_FIELDS = {
    "variables": "variableId",
    "triggers": "triggerId",
    "tags": "tagId",
    "templates": "templateId",
}


def gtm_credentials(raw: str) -> google.auth.credentials.Credentials:
    """GTM_CREDENTIALS_JSON → credentials: a service-account key (production), or an access token
    (``{"access_token": ...}`` or the bare token, for the sandbox and short-lived operator use).
    """
    text = raw.strip()
    if not text:
        raise ActionableError(
            "GTM_CREDENTIALS_JSON is empty",
            "set it to the JSON key of a service account added as a user of the GTM account "
            "with Publish permission (or, for the sandbox, to an access token)",
        )
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if isinstance(info, dict) and info.get("type") == "service_account":
        creds: google.auth.credentials.Credentials = (
            service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(SCOPES)
            )
        )
        return creds
    if isinstance(info, dict) and isinstance(info.get("access_token"), str):
        return oauth_credentials.Credentials(token=info["access_token"])  # type: ignore[no-untyped-call]
    if isinstance(info, dict | list):
        raise ActionableError(
            "GTM_CREDENTIALS_JSON is JSON but neither a service-account key nor an access token",
            "paste the service account's key file (type: service_account) as one line",
        )
    return oauth_credentials.Credentials(token=text)  # type: ignore[no-untyped-call]


def _reasons(exc: HttpError) -> set[str]:
    try:
        data = json.loads(exc.content.decode() or "{}")
    except ValueError:
        return set()
    error = data.get("error") or {}
    reasons = {str(e.get("reason", "")) for e in error.get("errors") or []}
    if error.get("status") == "RESOURCE_EXHAUSTED":
        reasons.add("quotaExceeded")
    return reasons


def _container(data: dict[str, Any]) -> GtmContainer:
    return GtmContainer(
        path=data["path"],
        container_id=str(data["containerId"]),
        public_id=str(data.get("publicId", "")),
        name=data["name"],
        usage_context=tuple(data.get("usageContext") or ()),
    )


def _version(data: dict[str, Any], compiler_error: bool = False) -> GtmVersion:
    return GtmVersion(
        path=data["path"],
        version_id=str(data["containerVersionId"]),
        name=str(data.get("name", "")),
        compiler_error=compiler_error,
    )


class GtmApi:
    def __init__(
        self,
        api_url: str,
        account_id: str,
        credentials: google.auth.credentials.Credentials,
        *,
        requests_per_second: float = 0.25,
        max_attempts: int = 5,
        backoff_s: float = 8.0,
        timeout_s: float = 30.0,
    ) -> None:
        self._account = f"accounts/{account_id}"
        self._connections = httplib2.Http(timeout=timeout_s)
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=self._connections)
        self._service: Any = build(
            "tagmanager",
            "v2",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": api_url},
        )
        self._limit = SlidingWindow.per_second(requests_per_second)
        self._attempts = max_attempts
        self._backoff = backoff_s
        self._lock = asyncio.Lock()

    def _fresh_connection_execute(self, request: Callable[[Any], Any]) -> Any:
        """Run one request on a new connection.

        At 0.25 requests/s (and after back-offs) a kept-alive connection has usually been closed
        by the server in between; httplib2 does not resend a POST on such a dead socket, so a
        create would fail as "unreachable". One handshake per call costs nothing at this rate.
        """
        for connection in self._connections.connections.values():
            connection.close()
        self._connections.connections.clear()
        return request(self._service).execute()

    async def _exec(self, what: str, request: Callable[[Any], Any]) -> Any:
        """Throttle, run in a thread, back off on rate answers, map errors to saga errors."""
        async with self._lock:
            for attempt in range(1, self._attempts + 1):
                await self._limit.acquire()
                try:
                    return await asyncio.to_thread(self._fresh_connection_execute, request)
                except HttpError as exc:
                    status = int(exc.resp.status)
                    reasons = _reasons(exc)
                    rate = status == 429 or (status == 403 and reasons & _RATE_REASONS)
                    if rate or status >= 500:
                        if attempt < self._attempts:
                            jitter = 0.5 + random.random()  # noqa: S311 - spreading retries
                            delay = self._backoff * 2 ** (attempt - 1) * jitter
                            log.warning(
                                "GTM throttled us; backing off",
                                what=what,
                                status=status,
                                attempt=attempt,
                                delay_s=round(delay, 1),
                            )
                            await asyncio.sleep(delay)
                            continue
                        if rate:
                            raise ActionableError(
                                f"GTM quota exhausted while trying to {what} (HTTP {status}, "
                                f"{', '.join(sorted(reasons)) or 'rate limited'}) after "
                                f"{self._attempts} attempts",
                                "wait for the quota to refill (0.25 requests/s; 10,000/day, reset "
                                "at midnight Pacific time) or raise it in the Google Cloud "
                                "console's Tag Manager API quotas; then re-run, it resumes",
                            ) from exc
                        raise TransientProviderError(
                            f"GTM answered HTTP {status} while trying to {what}; re-run"
                        ) from exc
                    if status in (401, 403):
                        raise ActionableError(
                            f"GTM refused the credentials while trying to {what} (HTTP {status})",
                            "add the service account of GTM_CREDENTIALS_JSON as a user of GTM "
                            f"account {self._account} with Publish permission, and check "
                            "GTM_ACCOUNT_ID",
                        ) from exc
                    if status == 404:
                        raise LookupError(what) from exc
                    raise ActionableError(
                        f"GTM refused to {what} (HTTP {status}: {exc.reason})",
                        "check the template in services/provisioner/.../templates/gtm",
                    ) from exc
                except (OSError, httplib2.HttpLib2Error) as exc:
                    raise TransientProviderError(f"GTM unreachable while trying to {what}") from exc
        raise AssertionError("unreachable")

    async def _list(
        self, what: str, method: Callable[..., Any], field: str, **kw: Any
    ) -> list[Any]:
        out: list[Any] = []
        token: str | None = None
        while True:

            def request(service: Any, page_token: str | None = token) -> Any:
                return method(service)(pageToken=page_token, **kw)

            page = await self._exec(what, request)
            out.extend(page.get(field) or [])
            token = page.get("nextPageToken")
            if not token:
                return out

    async def find_container(self, name: str) -> GtmContainer | None:
        items = await self._list(
            "list containers",
            lambda s: s.accounts().containers().list,
            "container",
            parent=self._account,
        )
        for item in items:
            if item.get("name") == name:
                return _container(item)
        return None

    async def create_container(self, name: str, usage_context: str) -> GtmContainer:
        body = {"name": name, "usageContext": [usage_context]}
        data = await self._exec(
            f"create container {name}",
            lambda s: s.accounts().containers().create(parent=self._account, body=body),
        )
        return _container(data)

    async def delete_container(self, path: str) -> None:
        try:
            await self._exec(
                f"delete container {path}", lambda s: s.accounts().containers().delete(path=path)
            )
        except LookupError:
            return

    async def container_config(self, container_path: str) -> str:
        data = await self._exec(
            "read the container snippet",
            lambda s: s.accounts().containers().snippet(path=container_path),
        )
        return str(data.get("containerConfig") or "")

    async def workspace(self, container_path: str) -> str:
        items = await self._list(
            "list workspaces",
            lambda s: s.accounts().containers().workspaces().list,
            "workspace",
            parent=container_path,
        )
        if items:
            return str(items[0]["path"])
        data = await self._exec(
            "create a workspace",
            lambda s: (
                s.accounts()
                .containers()
                .workspaces()
                .create(parent=container_path, body={"name": "Track AI"})
            ),
        )
        return str(data["path"])

    @staticmethod
    def _collection(service: Any, kind: str) -> Any:
        return getattr(service.accounts().containers().workspaces(), kind)()

    def _entity(self, kind: str, data: dict[str, Any]) -> GtmEntity:
        return GtmEntity(
            path=data["path"], entity_id=str(data[_ID_FIELDS[kind]]), name=data["name"], body=data
        )

    async def list_entities(self, workspace_path: str, kind: str) -> list[GtmEntity]:
        items = await self._list(
            f"list {kind}",
            lambda s: self._collection(s, kind).list,
            _KINDS[kind],
            parent=workspace_path,
        )
        return [self._entity(kind, item) for item in items]

    async def create_entity(
        self, workspace_path: str, kind: str, body: dict[str, Any]
    ) -> GtmEntity:
        data = await self._exec(
            f"create {kind[:-1]} {body.get('name')!r}",
            lambda s: self._collection(s, kind).create(parent=workspace_path, body=body),
        )
        return self._entity(kind, data)

    async def update_entity(self, entity: GtmEntity, body: dict[str, Any]) -> GtmEntity:
        kind = next(k for k, f in _ID_FIELDS.items() if f in entity.body)
        data = await self._exec(
            f"update {kind[:-1]} {entity.name!r}",
            lambda s: self._collection(s, kind).update(
                path=entity.path, fingerprint=entity.body.get("fingerprint"), body=body
            ),
        )
        return self._entity(kind, data)

    async def delete_entity(self, path: str) -> None:
        kind = next(k for k in _KINDS if f"/{k}/" in path)
        try:
            await self._exec(
                f"delete {path}", lambda s: self._collection(s, kind).delete(path=path)
            )
        except LookupError:
            return

    async def import_gallery_template(
        self, workspace_path: str, owner: str, repository: str
    ) -> GtmEntity:
        data = await self._exec(
            f"import gallery template {owner}/{repository}",
            lambda s: self._collection(s, "templates").import_from_gallery(
                parent=workspace_path,
                galleryOwner=owner,
                galleryRepository=repository,
                acknowledgePermissions=True,
            ),
        )
        return self._entity("templates", data)

    async def find_version(self, container_path: str, name: str) -> GtmVersion | None:
        items = await self._list(
            "list versions",
            lambda s: s.accounts().containers().version_headers().list,
            "containerVersionHeader",
            parent=container_path,
        )
        for item in items:
            if item.get("name") == name and not item.get("deleted"):
                return _version(item)
        return None

    async def create_version(self, workspace_path: str, name: str, notes: str) -> GtmVersion:
        data = await self._exec(
            f"create version {name}",
            lambda s: (
                s.accounts()
                .containers()
                .workspaces()
                .create_version(path=workspace_path, body={"name": name, "notes": notes})
            ),
        )
        if data.get("compilerError"):
            raise ActionableError(
                f"GTM could not compile the workspace for version {name}",
                "open the workspace in GTM, fix the entity GTM marks, then re-run",
            )
        return _version(data["containerVersion"])

    async def live_version(self, container_path: str) -> GtmVersion | None:
        try:
            data = await self._exec(
                "read the live version",
                lambda s: s.accounts().containers().versions().live(parent=container_path),
            )
        except LookupError:
            return None
        return _version(data) if data.get("containerVersionId") else None

    async def publish(self, version_path: str) -> GtmVersion:
        data = await self._exec(
            f"publish {version_path}",
            lambda s: s.accounts().containers().versions().publish(path=version_path),
        )
        if data.get("compilerError"):
            raise ActionableError(
                f"GTM refused to publish {version_path}: compiler error",
                "open the version in GTM, fix it, and create a new run",
            )
        return _version(data["containerVersion"])
