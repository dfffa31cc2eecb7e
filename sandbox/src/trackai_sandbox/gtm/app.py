"""The Tag Manager fake as a FastAPI app: ``/tagmanager/v2`` as the discovery document defines it
(accounts, containers, workspaces, variables, triggers, tags, templates, built-in variables,
versions), plus ``/_sandbox``. OAuth bearer auth and a per-project request quota on every call.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from trackai_sandbox.gtm.errors import (
    GoogleError,
    bad_request,
    invalid_json,
    not_found,
    quota_exceeded,
    render_5xx,
    unauthenticated,
)
from trackai_sandbox.gtm.state import (
    BUILT_IN_NAMES,
    KINDS,
    UI,
    Container,
    GalleryTemplate,
    GtmState,
    QuotaWindow,
    Workspace,
    compile_errors,
)
from trackai_sandbox.provider_faults import FaultBook, fake_app

logger = logging.getLogger("trackai_sandbox.gtm")

API = "/tagmanager/v2"


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Field names per schema, from the Tag Manager v2 discovery document: anything else is refused
# the way Google's JSON parser refuses it ("Unknown name ... Cannot find field").
_FIELDS: dict[str, frozenset[str]] = {
    "container": _names(
        "accountId containerId domainName features fingerprint name notes path publicId tagIds "
        "tagManagerUrl taggingServerUrls usageContext"
    ),
    "workspace": _names(
        "accountId containerId description fingerprint name path tagManagerUrl workspaceId"
    ),
    "variable": _names(
        "accountId containerId disablingTriggerId enablingTriggerId fingerprint formatValue name "
        "notes parameter parentFolderId path scheduleEndMs scheduleStartMs tagManagerUrl type "
        "variableId workspaceId"
    ),
    "trigger": _names(
        "accountId autoEventFilter checkValidation containerId continuousTimeMinMilliseconds "
        "customEventFilter eventName filter fingerprint horizontalScrollPercentageList interval "
        "intervalSeconds limit maxTimerLengthSeconds name notes parameter parentFolderId path "
        "selector tagManagerUrl totalTimeMinMilliseconds triggerId type uniqueTriggerId "
        "verticalScrollPercentageList visibilitySelector visiblePercentageMax "
        "visiblePercentageMin waitForTags waitForTagsTimeout workspaceId"
    ),
    "tag": _names(
        "accountId blockingTriggerId consentSettings containerId fingerprint firingTriggerId "
        "liveOnly monitoringMetadata monitoringMetadataTagNameKey name notes parameter "
        "parentFolderId path paused priority scheduleEndMs scheduleStartMs setupTag "
        "tagFiringOption tagId tagManagerUrl teardownTag type workspaceId"
    ),
    "customTemplate": _names(
        "accountId containerId fingerprint galleryReference name path tagManagerUrl templateData "
        "templateId workspaceId"
    ),
    "parameter": _names("isWeakReference key list map type value"),
    "condition": _names("parameter type"),
}
_ENUMS: dict[str, frozenset[str]] = {
    "Parameter.Type": _names(
        "typeUnspecified template integer boolean list map triggerReference tagReference"
    ),
    "Condition.ConditionType": _names(
        "conditionTypeUnspecified equals contains startsWith endsWith matchRegex greater "
        "greaterOrEquals less lessOrEquals cssSelector urlMatches"
    ),
    "Trigger.EventType": _names(
        "eventTypeUnspecified pageview domReady windowLoaded customEvent triggerGroup init "
        "consentInit serverPageview always formSubmission click linkClick jsError historyChange "
        "timer scrollDepth elementVisibility youTubeVideo"
    ),
    "Tag.TagFiringOption": _names("tagFiringOptionUnspecified unlimited oncePerEvent oncePerLoad"),
    "Container.UsageContext": _names(
        "usageContextUnspecified web android ios androidSdk5 iosSdk5 amp server"
    ),
}
_TRIGGER_PARAMETER_FIELDS = _names(
    "checkValidation continuousTimeMinMilliseconds eventName horizontalScrollPercentageList "
    "interval intervalSeconds limit maxTimerLengthSeconds selector totalTimeMinMilliseconds "
    "uniqueTriggerId verticalScrollPercentageList visibilitySelector visiblePercentageMax "
    "visiblePercentageMin waitForTags waitForTagsTimeout"
)


@dataclass(frozen=True)
class GtmConfig:
    """Behaviour knobs (the launcher fills them from ``SANDBOX_GTM_*``)."""

    #: Google's default: 0.25 requests/s per Cloud project, counted over ``window_s``.
    qps: float = 0.25
    window_s: float = 60.0
    per_day: int = 10_000
    #: 429 RESOURCE_EXHAUSTED (today's answer) or 403 rateLimitExceeded (the older one).
    rate_limit_status: int = 429
    default_project: str = "100000000001"
    page_size: int = 100
    max_workspaces: int = 3


# --- body checks ---------------------------------------------------------------------------
def _enum(value: Any, enum: str, where: str) -> None:
    if value is not None and value not in _ENUMS[enum]:
        raise invalid_json(
            f"Invalid value at '{where}' (type.googleapis.com/google.tagmanager.v2.{enum}), "
            f"{json.dumps(value)}"
        )


def _known_fields(body: dict[str, Any], schema: str, where: str) -> None:
    for key in body:
        if key not in _FIELDS[schema]:
            raise invalid_json(
                f"Invalid JSON payload received. Unknown name {json.dumps(key)} at '{where}': "
                "Cannot find field."
            )


def _parameter(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise invalid_json(f"Invalid JSON payload received. '{where}' must be an object.")
    _known_fields(value, "parameter", where)
    _enum(value.get("type"), "Parameter.Type", f"{where}.type")
    for nested in ("list", "map"):
        for index, item in enumerate(value.get(nested) or []):
            _parameter(item, f"{where}.{nested}[{index}]")


def _parameters(body: dict[str, Any], where: str) -> None:
    for index, item in enumerate(body.get("parameter") or []):
        _parameter(item, f"{where}.parameter[{index}]")


def check_body(schema: str, body: dict[str, Any]) -> None:
    """Google's parser: unknown fields and enum values are refused before anything else."""
    _known_fields(body, schema, schema)
    if schema in ("tag", "variable", "trigger"):
        _parameters(body, schema)
    if schema == "tag":
        _enum(body.get("tagFiringOption"), "Tag.TagFiringOption", "tag.tag_firing_option")
        for key in ("priority", "monitoringMetadata"):
            if key in body:
                _parameter(body[key], f"tag.{key}")
    if schema == "trigger":
        _enum(body.get("type"), "Trigger.EventType", "trigger.type")
        for key in _TRIGGER_PARAMETER_FIELDS:
            if key in body:
                _parameter(body[key], f"trigger.{key}")
        for key in ("filter", "customEventFilter", "autoEventFilter"):
            for index, condition in enumerate(body.get(key) or []):
                where = f"trigger.{key}[{index}]"
                _known_fields(condition, "condition", where)
                _enum(condition.get("type"), "Condition.ConditionType", f"{where}.type")
                for p_index, item in enumerate(condition.get("parameter") or []):
                    _parameter(item, f"{where}.parameter[{p_index}]")
    if schema == "container":
        for index, usage in enumerate(body.get("usageContext") or []):
            _enum(usage, "Container.UsageContext", f"container.usage_context[{index}]")


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        raise invalid_json("Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise invalid_json("Invalid JSON payload received. Expected an object.")
    return body


def _page(rows: list[dict[str, Any]], key: str, token: str | None, size: int) -> dict[str, Any]:
    start = int(token) if token and token.isdigit() else 0
    answer: dict[str, Any] = {key: rows[start : start + size]}
    if start + size < len(rows):
        answer["nextPageToken"] = str(start + size)
    return answer


class TagManager:
    """Request handling for ``/tagmanager/v2``, separate from routing."""

    def __init__(self, state: GtmState, config: GtmConfig) -> None:
        self.state = state
        self.config = config
        self.qps = config.qps
        self.window_s = config.window_s

    # --- auth and quota --------------------------------------------------------------------
    def admit(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated(missing=True)
        if token in self.state.invalid_tokens:
            raise unauthenticated(missing=False)
        project = self.state.token_projects.get(token, self.config.default_project)
        window = self.state.quotas.setdefault(project, QuotaWindow())
        per_window = max(1, round(self.qps * self.window_s))
        hit = window.admit(time.monotonic(), per_window, self.window_s, self.config.per_day)
        if hit is not None:
            raise quota_exceeded(project, hit, self.config.rate_limit_status == 403)

    # --- lookups ---------------------------------------------------------------------------
    def container(self, account: str, container: str) -> Container:
        if account not in self.state.accounts:
            raise not_found()
        found = self.state.containers.get((account, container))
        if found is None:
            raise not_found()
        return found

    def workspace(
        self, account: str, container: str, workspace: str
    ) -> tuple[Container, Workspace]:
        owner = self.container(account, container)
        found = owner.workspaces.get(workspace)
        if found is None:
            raise not_found()
        return owner, found

    def fingerprint_matches(self, request: Request, current: str) -> None:
        wanted = request.query_params.get("fingerprint")
        if wanted and wanted != current:
            raise GoogleError(
                409,
                "ABORTED",
                "Fingerprint does not match: the entity was changed by someone else.",
                "conflict",
            )

    # --- containers ------------------------------------------------------------------------
    def create_container(self, account: str, body: dict[str, Any]) -> dict[str, Any]:
        if account not in self.state.accounts:
            raise not_found()
        check_body("container", body)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or not body.get("usageContext"):
            raise bad_request()
        if any(
            c.document["name"] == name.strip()
            for (a, _), c in self.state.containers.items()
            if a == account
        ):
            # Container names are unique per account; GTM's answer does not say so.
            raise bad_request()
        document: dict[str, Any] = {
            key: copy.deepcopy(body[key])
            for key in ("name", "usageContext", "domainName", "notes", "taggingServerUrls")
            if key in body
        }
        document["name"] = name.strip()
        created = self.state.new_container(account, document)
        logger.info("gtm created container %s (%s)", created.public_id, created.context)
        return created.as_dict()

    def update_container(
        self, request: Request, owner: Container, body: dict[str, Any]
    ) -> dict[str, Any]:
        check_body("container", body)
        self.fingerprint_matches(request, owner.fingerprint)
        for key in ("name", "domainName", "notes", "taggingServerUrls"):
            if key in body:
                owner.document[key] = copy.deepcopy(body[key])
        owner.fingerprint = self.state.fingerprints.next()
        return owner.as_dict()

    def snippet(self, owner: Container) -> dict[str, Any]:
        if owner.context == "server":
            return {"containerConfig": owner.container_config()}
        public_id = owner.public_id
        return {
            "snippet": (
                "<!-- Google Tag Manager -->\n<script>(function(w,d,s,l,i){w[l]=w[l]||[];"
                "w[l].push({'gtm.start':new Date().getTime(),event:'gtm.js'});"
                "var f=d.getElementsByTagName(s)[0],j=d.createElement(s),"
                "dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src="
                "'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);"
                f"}})(window,document,'script','dataLayer','{public_id}');</script>\n"
                "<!-- End Google Tag Manager -->"
            )
        }

    # --- workspaces ------------------------------------------------------------------------
    def workspace_dict(self, owner: Container, workspace: Workspace) -> dict[str, Any]:
        path = f"{owner.path}/workspaces/{workspace.workspace_id}"
        return {
            "path": path,
            "accountId": owner.account_id,
            "containerId": owner.container_id,
            "workspaceId": workspace.workspace_id,
            "name": workspace.name,
            "description": workspace.description,
            "fingerprint": workspace.fingerprint,
            "tagManagerUrl": f"{UI}/{path}?apiLink=workspace",
        }

    def create_workspace(self, owner: Container, body: dict[str, Any]) -> dict[str, Any]:
        check_body("workspace", body)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request()
        if len(owner.workspaces) >= self.config.max_workspaces:
            raise GoogleError(
                400,
                "FAILED_PRECONDITION",
                "Workspace limit reached: delete a workspace before creating another.",
                "failedPrecondition",
            )
        if any(w.name == name.strip() for w in owner.workspaces.values()):
            raise bad_request()
        workspace = self.state.new_workspace(owner, name.strip(), body.get("description", ""))
        return self.workspace_dict(owner, workspace)

    # --- entities (variables, triggers, tags, templates) -------------------------------------
    def entity_dict(
        self, owner: Container, workspace: Workspace, collection: str, entity: dict[str, Any]
    ) -> dict[str, Any]:
        _, id_field = KINDS[collection]
        path = f"{owner.path}/workspaces/{workspace.workspace_id}/{collection}/{entity[id_field]}"
        return {
            **entity,
            "path": path,
            "accountId": owner.account_id,
            "containerId": owner.container_id,
            "workspaceId": workspace.workspace_id,
            "tagManagerUrl": f"{UI}/{path}?apiLink={collection[:-1]}",
        }

    def _entity_body(self, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        schema, id_field = KINDS[collection]
        check_body(schema, body)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request()
        if collection in ("tags", "variables", "triggers") and not body.get("type"):
            raise bad_request()
        owned = {"accountId", "containerId", "workspaceId", "path", "tagManagerUrl", id_field}
        kept = {k: copy.deepcopy(v) for k, v in body.items() if k not in owned}
        kept["name"] = name.strip()
        return kept

    def _refuse_duplicate_name(
        self, workspace: Workspace, collection: str, name: str, exclude: str | None
    ) -> None:
        _, id_field = KINDS[collection]
        for entity in workspace.entities[collection].values():
            if entity["name"] == name and entity[id_field] != exclude:
                raise bad_request()

    def create_entity(
        self, owner: Container, workspace: Workspace, collection: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        entity = self._entity_body(collection, body)
        self._refuse_duplicate_name(workspace, collection, entity["name"], None)
        _, id_field = KINDS[collection]
        entity[id_field] = owner.next_id(collection)
        entity["fingerprint"] = self.state.fingerprints.next()
        workspace.entities[collection][entity[id_field]] = entity
        workspace.fingerprint = self.state.fingerprints.next()
        return self.entity_dict(owner, workspace, collection, entity)

    def update_entity(  # noqa: PLR0917 - mirrors the route's path
        self,
        request: Request,
        owner: Container,
        workspace: Workspace,
        collection: str,
        entity_id: str,
        body: dict[str, Any],
    ) -> dict[str, Any]:
        current = workspace.entities[collection].get(entity_id)
        if current is None:
            raise not_found()
        self.fingerprint_matches(request, current["fingerprint"])
        entity = self._entity_body(collection, body)
        self._refuse_duplicate_name(workspace, collection, entity["name"], entity_id)
        _, id_field = KINDS[collection]
        entity[id_field] = entity_id
        entity["fingerprint"] = self.state.fingerprints.next()
        workspace.entities[collection][entity_id] = entity
        workspace.fingerprint = self.state.fingerprints.next()
        return self.entity_dict(owner, workspace, collection, entity)

    def import_from_gallery(
        self, owner: Container, workspace: Workspace, params: dict[str, str]
    ) -> dict[str, Any]:
        if params.get("acknowledgePermissions", "").lower() != "true":
            raise bad_request("acknowledgePermissions must be true to import a Gallery template.")
        key = (params.get("galleryOwner", ""), params.get("galleryRepository", ""))
        template = self.state.gallery.get(key)
        if template is None:
            raise not_found()
        if template.context != owner.context:
            raise bad_request(
                f"Gallery template {key[0]}/{key[1]} cannot be used in a {owner.context} container."
            )
        sha = params.get("gallerySha") or template.sha
        for existing in workspace.entities["templates"].values():
            reference = existing.get("galleryReference") or {}
            if (reference.get("owner"), reference.get("repository")) == key:
                return self.entity_dict(owner, workspace, "templates", existing)
        body = {
            "name": template.name,
            "templateData": f'___INFO___\n\n{{"displayName": "{template.name}"}}\n',
            "galleryReference": {
                "host": "github.com",
                "owner": template.owner,
                "repository": template.repository,
                "version": sha,
                "signature": sha[:16],
                "isModified": False,
                "galleryTemplateId": f"{template.owner}/{template.repository}",
            },
        }
        return self.create_entity(owner, workspace, "templates", body)

    # --- versions --------------------------------------------------------------------------
    def create_version(
        self, owner: Container, workspace: Workspace, body: dict[str, Any]
    ) -> dict[str, Any]:
        problems = compile_errors(owner, workspace)
        if problems:
            logger.info("gtm compiler error in %s: %s", owner.public_id, "; ".join(problems))
            return {
                "compilerError": True,
                "syncStatus": {"mergeConflict": False, "syncError": False},
            }
        version_id = owner.next_id("version")
        path = f"{owner.path}/versions/{version_id}"
        version: dict[str, Any] = {
            "path": path,
            "accountId": owner.account_id,
            "containerId": owner.container_id,
            "containerVersionId": version_id,
            "name": body.get("name", ""),
            "description": body.get("notes", ""),
            "container": owner.as_dict(),
            "fingerprint": self.state.fingerprints.next(),
            "tagManagerUrl": f"{UI}/{path}?apiLink=version",
        }
        for collection, (key, _) in KINDS.items():
            rows = [
                self.entity_dict(owner, workspace, collection, e)
                for e in workspace.entities[collection].values()
            ]
            if rows:
                version[key] = rows
        version["builtInVariable"] = [
            self.built_in_dict(owner, workspace, t) for t in workspace.built_ins
        ]
        owner.versions[version_id] = version
        # Creating a version consumes the workspace; GTM opens a fresh one on top of it.
        del owner.workspaces[workspace.workspace_id]
        fresh = self.state.new_workspace(owner, "Default Workspace", "")
        return {
            "containerVersion": version,
            "compilerError": False,
            "syncStatus": {"mergeConflict": False, "syncError": False},
            "newWorkspacePath": f"{owner.path}/workspaces/{fresh.workspace_id}",
        }

    def version(self, owner: Container, version_id: str) -> dict[str, Any]:
        found = owner.versions.get(version_id)
        if found is None:
            raise not_found()
        return found

    def publish(self, request: Request, owner: Container, version_id: str) -> dict[str, Any]:
        version = self.version(owner, version_id)
        self.fingerprint_matches(request, version["fingerprint"])
        owner.live_version_id = version_id
        logger.info("gtm published %s version %s", owner.public_id, version_id)
        return {"containerVersion": version, "compilerError": False}

    def version_header(self, version: dict[str, Any]) -> dict[str, Any]:
        header = {k: version[k] for k in ("path", "accountId", "containerId", "containerVersionId")}
        header["name"] = version.get("name", "")
        for key, count in (
            ("tag", "numTags"),
            ("trigger", "numTriggers"),
            ("variable", "numVariables"),
            ("customTemplate", "numCustomTemplates"),
        ):
            header[count] = str(len(version.get(key, [])))
        return header

    def built_in_dict(self, owner: Container, workspace: Workspace, kind: str) -> dict[str, Any]:
        return {
            "path": f"{owner.path}/workspaces/{workspace.workspace_id}/built_in_variables"
            f"?type={kind}",
            "accountId": owner.account_id,
            "containerId": owner.container_id,
            "workspaceId": workspace.workspace_id,
            "type": kind,
            "name": BUILT_IN_NAMES.get(kind, kind),
        }


# --- app -----------------------------------------------------------------------------------
class GalleryIn(BaseModel):
    owner: str
    repository: str
    name: str
    context: str = Field(pattern="^(web|server)$")


class TokenIn(BaseModel):
    token: str = Field(min_length=1)
    project: str | None = None
    valid: bool = True


class QuotaIn(BaseModel):
    qps: float = Field(gt=0)
    window_s: float | None = Field(default=None, gt=0)


def create_app(
    config: GtmConfig | None = None, bootstrap: Callable[[GtmState], None] | None = None
) -> FastAPI:
    """Build the fake. ``bootstrap`` registers the demo account and gallery, again on reset."""
    config = config or GtmConfig()
    state = GtmState()
    book = FaultBook()
    gtm = TagManager(state, config)

    def reset() -> None:
        state.reset()
        gtm.qps, gtm.window_s = config.qps, config.window_s
        if bootstrap is not None:
            bootstrap(state)

    reset()
    app = fake_app("Google Tag Manager API v2", book, reset, render_5xx)
    app.state.gtm = state

    @app.exception_handler(GoogleError)
    async def google_error(request: Request, error: GoogleError) -> Response:
        return JSONResponse(error.render(), status_code=error.code, headers=error.headers)

    _add_control_routes(app, state, gtm)
    _add_api_routes(app, gtm)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def no_route(path: str) -> Response:
        raise not_found()

    return app


Handler = Callable[..., Awaitable[Any]]


def _add_api_routes(app: FastAPI, gtm: TagManager) -> None:  # noqa: PLR0915 - one route table
    def route(method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                gtm.admit(request)
                result = await handler(request, **request.path_params)
                if result is None:
                    return Response(status_code=204)
                return JSONResponse(result)

            app.add_api_route(API + path, endpoint, methods=[method], name=f"{method} {path}")
            return handler

        return register

    size = gtm.config.page_size
    account = "/accounts/{account}"
    containers = account + "/containers"
    container = containers + "/{container}"
    workspaces = container + "/workspaces"
    workspace = workspaces + "/{workspace}"
    versions = container + "/versions"

    @route("GET", "/accounts")
    async def list_accounts(request: Request) -> Any:
        rows = [a.as_dict() for a in gtm.state.accounts.values()]
        return _page(rows, "account", request.query_params.get("pageToken"), size)

    @route("GET", account)
    async def get_account(request: Request, account: str) -> Any:
        found = gtm.state.accounts.get(account)
        if found is None:
            raise not_found()
        return found.as_dict()

    # Routes with a ":verb" suffix go first: "{container}" would also match "123:snippet".
    @route("GET", container + ":snippet")
    async def snippet(request: Request, account: str, container: str) -> Any:
        return gtm.snippet(gtm.container(account, container))

    @route("GET", versions + ":live")
    async def live(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        if owner.live_version_id is None:
            raise not_found()
        return owner.versions[owner.live_version_id]

    @route("POST", versions + "/{version}:publish")
    async def publish(request: Request, account: str, container: str, version: str) -> Any:
        return gtm.publish(request, gtm.container(account, container), version)

    @route("POST", workspace + ":create_version")
    async def create_version(request: Request, account: str, container: str, workspace: str) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        return gtm.create_version(owner, found, await _json_object(request))

    @route("POST", workspace + "/templates:import_from_gallery")
    async def import_template(
        request: Request, account: str, container: str, workspace: str
    ) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        return gtm.import_from_gallery(owner, found, dict(request.query_params))

    @route("GET", containers)
    async def list_containers(request: Request, account: str) -> Any:
        if account not in gtm.state.accounts:
            raise not_found()
        rows = [c.as_dict() for (a, _), c in gtm.state.containers.items() if a == account]
        return _page(rows, "container", request.query_params.get("pageToken"), size)

    @route("POST", containers)
    async def create_container(request: Request, account: str) -> Any:
        return gtm.create_container(account, await _json_object(request))

    @route("GET", container)
    async def get_container(request: Request, account: str, container: str) -> Any:
        return gtm.container(account, container).as_dict()

    @route("PUT", container)
    async def update_container(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        return gtm.update_container(request, owner, await _json_object(request))

    @route("DELETE", container)
    async def delete_container(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        del gtm.state.containers[(owner.account_id, owner.container_id)]
        logger.info("gtm deleted container %s", owner.public_id)
        return None

    @route("GET", workspaces)
    async def list_workspaces(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        rows = [gtm.workspace_dict(owner, w) for w in owner.workspaces.values()]
        return _page(rows, "workspace", request.query_params.get("pageToken"), size)

    @route("POST", workspaces)
    async def create_workspace(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        return gtm.create_workspace(owner, await _json_object(request))

    @route("GET", workspace)
    async def get_workspace(request: Request, account: str, container: str, workspace: str) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        return gtm.workspace_dict(owner, found)

    @route("DELETE", workspace)
    async def delete_workspace(
        request: Request, account: str, container: str, workspace: str
    ) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        del owner.workspaces[found.workspace_id]
        return None

    _add_entity_routes(route, gtm, workspace)
    _add_built_in_routes(route, gtm, workspace)

    @route("GET", versions + "/{version}")
    async def get_version(request: Request, account: str, container: str, version: str) -> Any:
        return gtm.version(gtm.container(account, container), version)

    @route("GET", container + "/version_headers")
    async def version_headers(request: Request, account: str, container: str) -> Any:
        owner = gtm.container(account, container)
        rows = [gtm.version_header(v) for _, v in sorted(owner.versions.items(), key=_int_key)]
        return _page(rows, "containerVersionHeader", request.query_params.get("pageToken"), size)


def _int_key(item: tuple[str, Any]) -> int:
    return int(item[0])


def _add_entity_routes(
    route: Callable[[str, str], Callable[[Handler], Handler]], gtm: TagManager, workspace: str
) -> None:
    for collection, (key, _) in KINDS.items():
        many = f"{workspace}/{collection}"
        one = many + "/{entity}"
        list_key = "template" if collection == "templates" else key

        def bind(
            collection: str = collection, list_key: str = list_key, many: str = many, one: str = one
        ) -> None:
            @route("GET", many)
            async def list_entities(
                request: Request, account: str, container: str, workspace: str
            ) -> Any:
                owner, found = gtm.workspace(account, container, workspace)
                rows = [
                    gtm.entity_dict(owner, found, collection, e)
                    for e in found.entities[collection].values()
                ]
                return _page(rows, list_key, request.query_params.get("pageToken"), 200)

            @route("POST", many)
            async def create_entity(
                request: Request, account: str, container: str, workspace: str
            ) -> Any:
                owner, found = gtm.workspace(account, container, workspace)
                body = await _json_object(request)
                return gtm.create_entity(owner, found, collection, body)

            @route("GET", one)
            async def get_entity(
                request: Request, account: str, container: str, workspace: str, entity: str
            ) -> Any:
                owner, found = gtm.workspace(account, container, workspace)
                current = found.entities[collection].get(entity)
                if current is None:
                    raise not_found()
                return gtm.entity_dict(owner, found, collection, current)

            @route("PUT", one)
            async def update_entity(
                request: Request, account: str, container: str, workspace: str, entity: str
            ) -> Any:
                owner, found = gtm.workspace(account, container, workspace)
                body = await _json_object(request)
                return gtm.update_entity(request, owner, found, collection, entity, body)

            @route("DELETE", one)
            async def delete_entity(
                request: Request, account: str, container: str, workspace: str, entity: str
            ) -> Any:
                _, found = gtm.workspace(account, container, workspace)
                if found.entities[collection].pop(entity, None) is None:
                    raise not_found()
                return None

        bind()


def _add_built_in_routes(
    route: Callable[[str, str], Callable[[Handler], Handler]], gtm: TagManager, workspace: str
) -> None:
    path = workspace + "/built_in_variables"

    @route("GET", path)
    async def list_built_ins(request: Request, account: str, container: str, workspace: str) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        rows = [gtm.built_in_dict(owner, found, t) for t in found.built_ins]
        return _page(rows, "builtInVariable", request.query_params.get("pageToken"), 200)

    @route("POST", path)
    async def enable(request: Request, account: str, container: str, workspace: str) -> Any:
        owner, found = gtm.workspace(account, container, workspace)
        kinds = request.query_params.getlist("type")
        for kind in kinds:
            if kind not in BUILT_IN_NAMES:
                raise invalid_json(f"Invalid value at 'type' (BuiltInVariableType), \"{kind}\"")
            if kind not in found.built_ins:
                found.built_ins.append(kind)
        return {"builtInVariable": [gtm.built_in_dict(owner, found, k) for k in kinds]}

    @route("DELETE", path)
    async def disable(request: Request, account: str, container: str, workspace: str) -> Any:
        _, found = gtm.workspace(account, container, workspace)
        for kind in request.query_params.getlist("type"):
            if kind in found.built_ins:
                found.built_ins.remove(kind)
        return None


def _add_control_routes(app: FastAPI, state: GtmState, gtm: TagManager) -> None:
    @app.post("/_sandbox/tokens")
    async def add_token(body: TokenIn) -> dict[str, Any]:
        if body.project:
            state.token_projects[body.token] = body.project
        if body.valid:
            state.invalid_tokens.discard(body.token)
        else:
            state.invalid_tokens.add(body.token)
        return {"project": body.project, "valid": body.valid}

    @app.post("/_sandbox/quota")
    async def set_quota(body: QuotaIn) -> dict[str, Any]:
        gtm.qps = body.qps
        if body.window_s is not None:
            gtm.window_s = body.window_s
        state.quotas.clear()
        return {"qps": gtm.qps, "window_s": gtm.window_s}

    @app.post("/_sandbox/gallery")
    async def add_gallery(body: GalleryIn) -> dict[str, Any]:
        template = GalleryTemplate(body.owner, body.repository, body.name, body.context)
        state.gallery[(body.owner, body.repository)] = template
        return vars(template)

    @app.get("/_sandbox/containers")
    async def list_all() -> dict[str, Any]:
        rows = []
        for owner in state.containers.values():
            rows.append(
                owner.as_dict()
                | {
                    "workspaces": {
                        w.workspace_id: {
                            "name": w.name,
                            **{c: list(w.entities[c].values()) for c in KINDS},
                        }
                        for w in owner.workspaces.values()
                    },
                    "versions": sorted(owner.versions, key=int),
                    "liveVersionId": owner.live_version_id,
                }
            )
        return {"data": rows, "total": len(rows)}
