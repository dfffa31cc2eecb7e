"""The Meta step: the stored token is valid and unexpired, and its pixel is reachable."""

from __future__ import annotations

from trackai_provisioner.domain.provisioning import ActionableError, StepOutcome
from trackai_provisioner.service_layer.steps.context import StepContext


async def validate_meta(ctx: StepContext) -> StepOutcome:
    meta = ctx.providers.meta
    info = await meta.debug_token(ctx.meta.access_token)
    if not info.is_valid:
        raise ActionableError(
            f"Meta says the stored access token is not valid ({info.error or 'is_valid false'})",
            "generate a new Conversions API token in Events Manager and store it with "
            "`trackai tenant set-meta`",
        )
    now = int(ctx.clock().timestamp())
    if info.expires_at and info.expires_at <= now:
        raise ActionableError(
            "the stored Meta access token has expired",
            "generate a system-user token that does not expire and store it with "
            "`trackai tenant set-meta`",
        )
    pixel = await meta.get_pixel(ctx.meta.pixel_id, ctx.meta.access_token)
    if pixel.is_unavailable:
        raise ActionableError(
            f"pixel {pixel.id} is marked unavailable by Meta",
            "pick an active pixel (dataset) in Events Manager and store it with "
            "`trackai tenant set-meta`",
        )
    expiry = "never expires" if not info.expires_at else f"expires at {info.expires_at}"
    return StepOutcome(
        detail=f"token valid ({expiry}); pixel {pixel.id} {pixel.name!r} reachable",
        request={"pixel_id": ctx.meta.pixel_id},
        response={
            "scopes": list(info.scopes),
            "expires_at": info.expires_at,
            "pixel": {"id": pixel.id, "name": pixel.name},
        },
    )
