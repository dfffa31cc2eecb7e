"""The Cloudflare step: the DNS-only CNAME from the tenant's custom domain to Stape's target,
refusing any record already there that would block or redirect it.
"""

from __future__ import annotations

from trackai_provisioner.domain.provisioning import ActionableError, Resource, StepOutcome
from trackai_provisioner.service_layer.ports import CnameRecord
from trackai_provisioner.service_layer.steps.context import StepContext


def usable_cname(name: str, target: str, records: list[CnameRecord]) -> CnameRecord | None:
    """The record already serving ``name`` → ``target``; raises when one is in the way."""
    for record in records:
        if record.type != "CNAME":
            raise ActionableError(
                f"{name} already has a {record.type} record ({record.content}), which "
                "blocks the CNAME Stape needs",
                "delete that record in Cloudflare if nothing uses it, then re-run",
            )
        if record.content.rstrip(".").lower() != target:
            raise ActionableError(
                f"{name} already points elsewhere: CNAME → {record.content}, while "
                f"Stape expects {target}",
                "if that record is not in use, delete it (or change it to the Stape "
                "target) in Cloudflare, then re-run",
            )
        if record.proxied:
            raise ActionableError(
                f"the CNAME {name} is proxied (orange cloud), which breaks Stape's certificate",
                "switch it to DNS only (grey cloud) in Cloudflare, then re-run",
            )
        return record
    return None


async def cloudflare_cname(ctx: StepContext) -> StepOutcome:
    dns = ctx.providers.dns
    name = ctx.run.custom_domain
    target = str(ctx.res["cname_target"]).rstrip(".").lower()
    await dns.check_zone(ctx.config.base_domain)

    async def lookup() -> CnameRecord | None:
        return usable_cname(name, target, await dns.find_records(name))

    async def create() -> CnameRecord | None:
        made = await dns.create_cname(
            name, target, f"Track AI: tenant {ctx.tenant.slug}, run {ctx.run.id}"
        )
        return usable_cname(name, target, [made])

    record, created = await ctx.ensure(
        "record",
        lookup,
        create,
        lambda r: Resource("dns_record", r.id, f"Cloudflare CNAME {name}"),
    )
    verb = "created" if created else "found"
    return StepOutcome(
        detail=f"{verb} CNAME {name} → {target} (DNS only), record {record.id}",
        outputs={"dns_record_id": record.id},
        request={"type": "CNAME", "name": name, "content": target, "proxied": False, "ttl": 1},
        response={"id": record.id, "content": record.content, "proxied": record.proxied},
        reused=not created,
    )
