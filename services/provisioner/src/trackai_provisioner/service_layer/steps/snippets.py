"""The last step: the install snippets for each checkout platform, stored on the run."""

from __future__ import annotations

from trackai_provisioner.domain import snippets as rendering
from trackai_provisioner.domain.provisioning import StepOutcome
from trackai_provisioner.service_layer.steps.context import StepContext


async def snippets(ctx: StepContext) -> StepOutcome:
    data = rendering.SnippetInput(
        tenant_id=str(ctx.tenant.id),
        funnel_slug=ctx.funnel.slug,
        pixel_id=ctx.meta.pixel_id,
        gtm_public_id=str(ctx.res["gtm_web_public_id"]),
        script_url=ctx.config.script_url,
        checkout_domains=tuple(ctx.funnel.checkout_domains),
    )
    rendered = rendering.render_all(data)
    await ctx.journal.set_snippets(rendered)
    ctx.run.snippets = rendered
    return StepOutcome(
        detail=f"snippets for {', '.join(s['platform'] for s in rendered)}",
        response={"platforms": [s["platform"] for s in rendered]},
    )
