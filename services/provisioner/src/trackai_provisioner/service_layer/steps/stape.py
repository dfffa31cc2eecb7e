"""The Stape steps: the server container (created with the GTM server container's config), its
wait until running, the custom domain, and the wait until Stape validates that domain.
"""

from __future__ import annotations

from typing import Any

from trackai_kit.logging import get_logger
from trackai_provisioner.domain.provisioning import (
    ActionableError,
    DeadlineExceeded,
    ProvisioningError,
    Resource,
    StepOutcome,
)
from trackai_provisioner.service_layer.steps.context import StepContext

log = get_logger(__name__)


def _container_ref(ctx: StepContext) -> str:
    return str(ctx.res["stape_container_id"])


async def stape_container(ctx: StepContext) -> StepOutcome:
    cfg, stape = ctx.config, ctx.providers.stape
    name = ctx.names.stape_container
    body: dict[str, Any] = {
        "name": name,
        "codeSettings": {"domain": ctx.run.custom_domain},
        "zone": {"type": cfg.stape_zone},
    }
    if cfg.stape_plan:
        body["plan"] = cfg.stape_plan

    async def create() -> Any:
        # Stape wants every anonymizer key; "n" = keep the value (Meta needs IP and UA).
        keys = cfg.anonymize_keys or await stape.anonymize_keys()
        body["anonymizeOptions"] = dict.fromkeys(keys, "n")
        # The server container's config is a credential of sorts: read it when needed,
        # never stored on the run.
        body["code"] = await ctx.providers.gtm.container_config(
            str(ctx.res["gtm_server_container_path"])
        )
        return await stape.create_container(body)

    container, created = await ctx.ensure(
        "container",
        lambda: stape.find_container(name),
        create,
        lambda c: Resource("stape_container", c.identifier, f"Stape container {c.identifier}"),
    )
    verb = "created" if created else "reused"
    return StepOutcome(
        detail=f"{verb} Stape container {name} ({container.identifier}), status "
        f"{container.status!r}",
        outputs={
            "stape_container_id": container.identifier,
            "stape_default_domain": container.stape_domain,
        },
        request={k: v for k, v in body.items() if k not in ("code", "anonymizeOptions")},
        response={"identifier": container.identifier, "status": container.status},
        reused=not created,
    )


async def stape_running(ctx: StepContext) -> StepOutcome:
    cfg = ctx.config
    identifier = _container_ref(ctx)
    budget = cfg.stape_timeout_s
    deadline = await ctx.poll_deadline(budget)
    status = ""
    polls = 0
    while True:
        try:
            container = await ctx.providers.stape.get_container(identifier)
            status = container.status
        except ProvisioningError as exc:
            if isinstance(exc, ActionableError):
                raise
            log.warning("stape poll failed; polling on", error=str(exc))
        polls += 1
        if status in cfg.stape_running_statuses:
            return StepOutcome(
                detail=f"Stape container {identifier} is {status!r}",
                response={"status": status, "polls": polls},
            )
        now = ctx.clock().timestamp()
        if status in cfg.stape_failed_statuses or now >= deadline:
            why = (
                f"Stape container {identifier} reported {status!r}"
                if status in cfg.stape_failed_statuses
                else f"Stape container {identifier} not running after {budget:.0f} s "
                f"(last status {status!r})"
            )
            raise DeadlineExceeded(why)
        await ctx.notify(f"Stape status {status!r}; {deadline - now:.0f} s left of {budget:.0f} s")
        await ctx.sleep(min(cfg.stape_poll_interval_s, max(deadline - now, 0.0)))


async def stape_domain(ctx: StepContext) -> StepOutcome:
    stape = ctx.providers.stape
    container = _container_ref(ctx)
    name = ctx.run.custom_domain
    domain, created = await ctx.ensure(
        "domain",
        lambda: stape.find_domain(container, name),
        lambda: stape.add_domain(container, name),
        lambda d: Resource("stape_domain", f"{container}/{d.identifier}", f"Stape domain {name}"),
    )
    cname = [r for r in domain.records if r.type == "CNAME"]
    if not cname:
        raise ActionableError(
            f"Stape's answer for {name} lists no CNAME record ({[r.type for r in domain.records]})",
            "check the domain in Stape's dashboard (it must use a CNAME record, not A), "
            "delete it there, and re-run",
        )
    verb = "added" if created else "found"
    return StepOutcome(
        detail=f"{verb} custom domain {name} on Stape; expects CNAME → {cname[0].value}",
        outputs={"stape_domain_id": domain.identifier, "cname_target": cname[0].value},
        request={"name": name, "cdnType": "stape", "useCnameRecord": True},
        response={
            "identifier": domain.identifier,
            "status": domain.status,
            "records": [r.__dict__ for r in domain.records],
        },
        reused=not created,
    )


async def stape_domain_validation(ctx: StepContext) -> StepOutcome:
    cfg, stape = ctx.config, ctx.providers.stape
    container = _container_ref(ctx)
    domain_id = str(ctx.res["stape_domain_id"])
    budget = cfg.domain_timeout_s
    deadline = await ctx.poll_deadline(budget)
    domain = await stape.get_domain(container, domain_id)
    if domain.status not in cfg.domain_ready_statuses:
        domain = await stape.revalidate_domain(container, domain_id)
    while domain.status not in cfg.domain_ready_statuses:
        now = ctx.clock().timestamp()
        if now >= deadline:
            ctx.step.state.pop("deadline", None)  # a re-run gets a fresh budget
            await ctx.save_state()
            raise ActionableError(
                f"Stape has not validated {ctx.run.custom_domain} after {budget:.0f} s "
                f"(status {domain.status!r}, error {domain.error or 'none'})",
                f"check that {ctx.run.custom_domain} is a DNS-only CNAME to "
                f"{ctx.res['cname_target']} (dig CNAME {ctx.run.custom_domain}); DNS can take "
                "minutes to propagate; re-run to resume",
            )
        await ctx.notify(
            f"domain status {domain.status!r} ({domain.error or 'no error'}); "
            f"{deadline - now:.0f} s left"
        )
        await ctx.sleep(min(cfg.domain_poll_interval_s, max(deadline - now, 0.0)))
        domain = await stape.get_domain(container, domain_id)
        if domain.status in cfg.domain_failed_statuses:
            # DNS may still be propagating: ask again until the budget runs out.
            domain = await stape.revalidate_domain(container, domain_id)
    url = f"https://{ctx.run.custom_domain}"
    return StepOutcome(
        detail=f"domain validated; tagging server {url}",
        outputs={"tagging_server_url": url},
        response={"status": domain.status},
    )
