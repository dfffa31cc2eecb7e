"""Settings of the provisioner: the kit's blocks plus the encryption key ring."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from trackai_kit.settings import ServiceSettings, service_config

#: Used only when TRACKAI_ENV is local or test and no key ring is configured. Never a real key.
LOCAL_DEV_KEY_RING = "dev:" + "ZGV2LW9ubHktbG9jYWwta2V5LW5vdC1mb3ItcHJvZCE="


class Settings(ServiceSettings):
    model_config = service_config("provisioner")

    service_name: str = "provisioner"
    #: ``kid:base64(32 bytes)[,kid:base64...]``; the first key seals, every key opens.
    encryption_keys: SecretStr = Field(SecretStr(""), alias="TRACKAI_ENCRYPTION_KEYS")
    #: Seed of every new tenant's webhook rate limit (requests per minute).
    default_rate_limit_per_minute: int = Field(100, alias="INGESTION_RATE_LIMIT_PER_MINUTE")

    # Provisioning targets (the saga of issue 6). Empty credentials = the local sandbox fakes.
    cf_base_domain: str = Field("trackai.local", alias="CF_BASE_DOMAIN")
    cloudflare_api_url: str = Field(
        "https://api.cloudflare.com/client/v4", alias="CLOUDFLARE_API_URL"
    )
    cloudflare_api_token: SecretStr = Field(SecretStr(""), alias="CLOUDFLARE_API_TOKEN")
    cloudflare_zone_id: str = Field("", alias="CLOUDFLARE_ZONE_ID")
    stape_api_url: str = Field("https://api.app.stape.io", alias="STAPE_API_URL")
    stape_api_key: SecretStr = Field(SecretStr(""), alias="STAPE_API_KEY")
    gtm_api_url: str = Field("https://tagmanager.googleapis.com", alias="GTM_API_URL")
    gtm_account_id: str = Field("", alias="GTM_ACCOUNT_ID")
    gtm_credentials_json: SecretStr = Field(SecretStr(""), alias="GTM_CREDENTIALS_JSON")
    gtm_requests_per_second: float = Field(0.25, alias="GTM_REQUESTS_PER_SECOND")
    meta_graph_url: str = Field("https://graph.facebook.com", alias="META_GRAPH_URL")
    meta_api_version: str = Field("v25.0", alias="META_API_VERSION")
    meta_app_token: SecretStr = Field(SecretStr(""), alias="META_APP_TOKEN")

    @model_validator(mode="after")
    def _key_ring_required_outside_local(self) -> Settings:
        if not self.encryption_keys.get_secret_value():
            if self.environment in ("staging", "production"):
                raise ValueError(
                    "TRACKAI_ENCRYPTION_KEYS is empty: outside the local sandbox the provisioner "
                    "needs a key ring ('kid:base64-32-bytes'); generate one with "
                    "`trackai keys generate`"
                )
            self.encryption_keys = SecretStr(LOCAL_DEV_KEY_RING)
        return self
