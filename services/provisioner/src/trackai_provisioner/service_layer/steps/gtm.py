"""The GTM steps: the server and web containers, their workspaces filled from the versioned
templates (gallery templates imported, entities created or updated in place), and one unpublished
version per container for the operator to review.
"""

from __future__ import annotations

from typing import Any

from trackai_provisioner.domain import gtm_templates
from trackai_provisioner.domain.provisioning import ActionableError, Resource, StepOutcome
from trackai_provisioner.service_layer.ports import GtmEntity
from trackai_provisioner.service_layer.steps.context import StepContext


def _entity_resource(entity: GtmEntity) -> Resource:
    return Resource("gtm_entity", entity.path, f"GTM {entity.name!r}")


async def _container(ctx: StepContext, side: str, name: str) -> StepOutcome:
    """Find or create the ``side`` ("server"/"web") container named ``name``."""
    gtm = ctx.providers.gtm
    container, created = await ctx.ensure(
        "container",
        lambda: gtm.find_container(name),
        lambda: gtm.create_container(name, side),
        lambda c: Resource("gtm_container", c.path, f"GTM {side} container {c.public_id}"),
    )
    if side not in container.usage_context:
        raise ActionableError(
            f"GTM container {name!r} exists but is not a {side} container",
            "rename or delete that container in GTM, then re-run",
        )
    verb = "created" if created else "reused"
    return StepOutcome(
        detail=f"{verb} GTM {side} container {container.public_id}",
        outputs={
            f"gtm_{side}_container_path": container.path,
            f"gtm_{side}_container_id": container.container_id,
            f"gtm_{side}_public_id": container.public_id,
        },
        request={"name": name, "usageContext": [side]},
        response={"path": container.path, "publicId": container.public_id},
        reused=not created,
    )


async def gtm_server_container(ctx: StepContext) -> StepOutcome:
    outcome = await _container(ctx, "server", ctx.names.gtm_server_container)
    # Checked now so a container without a config fails here, not at Stape's create.
    config = await ctx.providers.gtm.container_config(outcome.outputs["gtm_server_container_path"])
    if not config:
        raise ActionableError(
            f"GTM returned no containerConfig for {outcome.outputs['gtm_server_public_id']}",
            "open the server container in GTM (Admin → Container settings) and check it "
            "was created as a Server container",
        )
    outcome.detail += " and read its config"
    return outcome


async def gtm_web_container(ctx: StepContext) -> StepOutcome:
    return await _container(ctx, "web", ctx.names.gtm_web_container)


def _values(ctx: StepContext) -> dict[str, str]:
    res, cfg = ctx.res, ctx.config
    return {
        "funnel_slug": ctx.funnel.slug,
        "pixel_id": ctx.meta.pixel_id,
        "access_token": ctx.meta.access_token,
        "tagging_server_url": str(res.get("tagging_server_url", "")),
        "custom_domain": ctx.run.custom_domain,
        "capi_template_owner": cfg.capi_template[0],
        "capi_template_repository": cfg.capi_template[1],
        "pixel_template_owner": cfg.pixel_template[0],
        "pixel_template_repository": cfg.pixel_template[1],
        "google_tag_id": cfg.google_tag_id or str(res.get("gtm_web_public_id", "")),
    }


async def _fill(ctx: StepContext, container_path: str, template: str) -> StepOutcome:
    rendered = gtm_templates.render(ctx.templates[template], _values(ctx))
    gtm = ctx.providers.gtm
    workspace = await gtm.workspace(container_path)
    counts = {"created": 0, "updated": 0, "reused": 0}
    gallery_types: dict[str, str] = {}
    if rendered.gallery:
        imported = await gtm.list_entities(workspace, "templates")
        for ref in rendered.gallery:

            async def find(ref: gtm_templates.GalleryRef = ref) -> Any:
                for t in imported:
                    gallery = t.body.get("galleryReference") or {}
                    if (
                        gallery.get("repository") == ref.repository
                        and gallery.get("owner") == ref.owner
                    ):
                        return t
                return None

            async def import_it(ref: gtm_templates.GalleryRef = ref) -> GtmEntity:
                return await gtm.import_gallery_template(workspace, ref.owner, ref.repository)

            entity, created = await ctx.ensure(
                f"gallery:{ref.key}", find, import_it, _entity_resource
            )
            counts["created" if created else "reused"] += 1
            # A gallery template's tag type is cvt_<containerId>_<templateId>.
            owner_container = entity.body.get("containerId") or container_path.rsplit("/", 1)[-1]
            gallery_types[ref.key] = f"cvt_{owner_container}_{entity.entity_id}"
    trigger_ids: dict[str, str] = {}
    summaries: list[dict[str, Any]] = []
    for kind in gtm_templates.KINDS:
        existing = {e.name: e for e in await gtm.list_entities(workspace, kind)}
        for body in rendered.entities[kind]:
            wanted = gtm_templates.bind(body, trigger_ids, gallery_types)
            entity = existing.get(body["name"])
            marker = f"create:{kind}:{body['name']}"
            if entity is None:
                ctx.step.state[marker] = True
                await ctx.save_state()
                entity = await gtm.create_entity(workspace, kind, wanted)
                await ctx.record(_entity_resource(entity))
                counts["created"] += 1
            elif ctx.step.state.get(marker):
                # Created by this run just before a crash: still ours to roll back.
                await ctx.record(_entity_resource(entity))
                counts["created"] += 1
            elif gtm_templates.differs(entity.body, wanted):
                entity = await gtm.update_entity(entity, wanted)
                counts["updated"] += 1
            else:
                counts["reused"] += 1
            if kind == "triggers":
                trigger_ids[body["name"]] = entity.entity_id
            summaries.append(gtm_templates.summary(body))
    changed = counts["created"] + counts["updated"]
    return StepOutcome(
        detail=f"{template} template v{rendered.version}: {counts['created']} created, "
        f"{counts['updated']} updated, {counts['reused']} already in place",
        outputs={
            f"{template}_workspace_path": workspace,
            f"{template}_fingerprint": rendered.fingerprint(),
        },
        request={"template": rendered.name, "version": rendered.version, "entities": summaries},
        response=counts,
        reused=changed == 0,
    )


async def gtm_server_workspace(ctx: StepContext) -> StepOutcome:
    return await _fill(ctx, str(ctx.res["gtm_server_container_path"]), "server")


async def gtm_web_workspace(ctx: StepContext) -> StepOutcome:
    return await _fill(ctx, str(ctx.res["gtm_web_container_path"]), "web")


async def gtm_versions(ctx: StepContext) -> StepOutcome:
    gtm = ctx.providers.gtm
    outputs: dict[str, Any] = {}
    made: list[str] = []
    for side in ("server", "web"):
        container = str(ctx.res[f"gtm_{side}_container_path"])
        workspace = str(ctx.res[f"{side}_workspace_path"])
        name = f"trackai {side} {ctx.funnel.slug} {ctx.res[f'{side}_fingerprint']}"
        version = await gtm.find_version(container, name)
        if version is None:
            version = await gtm.create_version(
                workspace, name, f"Track AI provisioning run {ctx.run.id}; not published"
            )
            made.append(side)
        outputs[f"gtm_{side}_version_id"] = version.version_id
        outputs[f"gtm_{side}_version_path"] = version.path
    return StepOutcome(
        detail="versions for review: "
        + ", ".join(f"{s} {outputs[f'gtm_{s}_version_id']}" for s in ("server", "web"))
        + (f" (created: {', '.join(made)})" if made else " (already there)"),
        outputs=outputs,
        response=outputs,
        reused=not made,
    )
