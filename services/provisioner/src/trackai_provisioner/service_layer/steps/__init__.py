"""The saga's steps, one module per provider, and the table the driver runs them from."""

from __future__ import annotations

from types import MappingProxyType

from trackai_provisioner.domain.provisioning import STEPS
from trackai_provisioner.service_layer.steps import cloudflare, gtm, meta, snippets, stape
from trackai_provisioner.service_layer.steps.context import Step

#: Each stored step name (``domain.provisioning.STEPS``, in run order) and the function doing it.
STEP_TABLE: MappingProxyType[str, Step] = MappingProxyType(
    {
        "validate_meta": meta.validate_meta,
        "gtm_server_container": gtm.gtm_server_container,
        "stape_container": stape.stape_container,
        "stape_running": stape.stape_running,
        "stape_domain": stape.stape_domain,
        "cloudflare_cname": cloudflare.cloudflare_cname,
        "stape_domain_validation": stape.stape_domain_validation,
        "gtm_server_workspace": gtm.gtm_server_workspace,
        "gtm_web_container": gtm.gtm_web_container,
        "gtm_web_workspace": gtm.gtm_web_workspace,
        "gtm_versions": gtm.gtm_versions,
        "snippets": snippets.snippets,
    }
)
# A stored run names its steps; a step missing here would strand every run at it.
if tuple(STEP_TABLE) != STEPS:  # pragma: no cover - guards edits of either list
    raise RuntimeError("STEP_TABLE must list domain.provisioning.STEPS, in order")
