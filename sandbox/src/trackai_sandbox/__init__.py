"""Track AI sandbox: faithful local fakes of the external systems (Meta today; Cloudflare, Stape,
GTM and an LLM endpoint later), served by ``python -m trackai_sandbox serve``."""
