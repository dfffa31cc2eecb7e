"""Settings of the provisioner: the kit's blocks plus the encryption key ring."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from trackai_kit.settings import ServiceSettings, service_config

#: Used only when TRACKAI_ENV is local or test and no key ring is configured. Never a real key.
LOCAL_DEV_KEY_RING = "dev:" + "ZGV2LW9ubHktbG9jYWwta2V5LW5vdC1mb3ItcHJvZCE="

#: The sandbox fakes (`python -m trackai_sandbox serve`) and their published demo credentials
#: (sandbox/README.md; nothing real). Used only when TRACKAI_ENV is local or test and the
#: provider's credential is empty, so `make run` provisions against the fakes out of the box.
SANDBOX = {
    "cloudflare_api_url": "http://127.0.0.1:8011/client/v4",
    "cloudflare_api_token": "sandbox-cloudflare-token0000000000000000",
    "cloudflare_zone_id": "023e105f4ecef8ad9ca31a8372d0c353",
    "stape_api_url": "http://127.0.0.1:8012",
    "stape_api_key": "sandbox-stape-key",
    "gtm_api_url": "http://127.0.0.1:8013",
    "gtm_account_id": "6000000001",
    "gtm_credentials_json": "sandbox-gtm-token",
    "meta_app_token": "100000000000001|sandbox-app-secret",
}
_PRODUCTION_URLS = {
    "cloudflare_api_url": "https://api.cloudflare.com/client/v4",
    "stape_api_url": "https://api.app.stape.io",
    "gtm_api_url": "https://tagmanager.googleapis.com",
}


def _holds_dev_key(ring: str) -> bool:
    """Whether the ring contains the development key's material, under any key id."""
    dev_material = LOCAL_DEV_KEY_RING.partition(":")[2]
    return any(entry.strip().partition(":")[2].strip() == dev_material for entry in ring.split(","))


class Settings(ServiceSettings):
    model_config = service_config("provisioner")

    https_only_fields = ("cloudflare_api_url", "stape_api_url", "gtm_api_url", "meta_graph_url")

    service_name: str = "provisioner"
    #: ``kid:base64(32 bytes)[,kid:base64...]``; the first key seals, every key opens.
    encryption_keys: SecretStr = Field(SecretStr(""), alias="TRACKAI_ENCRYPTION_KEYS")
    #: Seed of every new tenant's webhook rate limit (requests per minute).
    default_rate_limit_per_minute: int = Field(100, alias="INGESTION_RATE_LIMIT_PER_MINUTE")

    # Provisioning targets (the saga of issue 6). Empty credentials = the local sandbox fakes.
    cf_base_domain: str = Field("trackai.test", alias="CF_BASE_DOMAIN")
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

    # Saga knobs; provider facts not documented (status strings, templates) are settings too.
    stape_timeout_s: float = Field(600.0, alias="PROVISIONING_STAPE_TIMEOUT_S", gt=0)
    domain_timeout_s: float = Field(300.0, alias="PROVISIONING_DOMAIN_TIMEOUT_S", gt=0)
    poll_interval_s: float = Field(10.0, alias="PROVISIONING_POLL_INTERVAL_S", gt=0)
    stape_running_statuses: str = Field("running", alias="STAPE_RUNNING_STATUSES")
    stape_failed_statuses: str = Field("error,failed", alias="STAPE_FAILED_STATUSES")
    stape_domain_ready_statuses: str = Field("verified", alias="STAPE_DOMAIN_READY_STATUSES")
    stape_container_zone: str = Field("sa", alias="STAPE_CONTAINER_ZONE")
    stape_container_plan: str = Field("", alias="STAPE_CONTAINER_PLAN")
    gtm_capi_template: str = Field("stape-io/facebook-tag", alias="GTM_CAPI_TEMPLATE")
    gtm_pixel_template: str = Field(
        "facebookarchive/GoogleTagManager-WebTemplate-For-FacebookPixel",
        alias="GTM_PIXEL_TEMPLATE",
    )
    gtm_google_tag_id: str = Field("", alias="GTM_GOOGLE_TAG_ID")
    #: Where ingestion's gRPC API answers: provisioning and publishing stay locked until it has
    #: a verified webhook from one of the tenant's gateways (seed STORY-009).
    ingestion_grpc_target: str = Field("127.0.0.1:50051", alias="INGESTION_GRPC_TARGET")
    ingestion_timeout_s: float = Field(5.0, alias="PROVISIONER_INGESTION_TIMEOUT_S", gt=0)
    tracking_script_url: str = Field(
        "http://127.0.0.1:8001/sdk/v1/track.js", alias="TRACKING_SCRIPT_URL"
    )
    #: Providers pointed at the sandbox fakes for lack of credentials (logged at start).
    _sandbox_providers: tuple[str, ...] = PrivateAttr(default=())

    @property
    def sandbox_providers(self) -> tuple[str, ...]:
        return self._sandbox_providers

    @model_validator(mode="after")
    def _key_ring_required_outside_local(self) -> Settings:
        if not self.is_development and _holds_dev_key(self.encryption_keys.get_secret_value()):
            raise ValueError(
                "TRACKAI_ENCRYPTION_KEYS holds the published development key (kid 'dev'): "
                "anyone can read secrets sealed with it; generate a key with `trackai keys "
                "generate`, put it first and re-seal (docs/runbooks/key-rotation.md)"
            )
        if not self.encryption_keys.get_secret_value():
            if not self.is_development:
                raise ValueError(
                    "TRACKAI_ENCRYPTION_KEYS is empty: outside the local sandbox the provisioner "
                    "needs a key ring ('kid:base64-32-bytes'); generate one with "
                    "`trackai keys generate`"
                )
            self.encryption_keys = SecretStr(LOCAL_DEV_KEY_RING)
        if self.is_development:
            self._fall_back_to_sandbox()
        return self

    def _fall_back_to_sandbox(self) -> None:
        """Per provider: no credential and the production URL → the local fake and its demo."""
        used: list[str] = []
        for provider, secret, others in (
            ("cloudflare", "cloudflare_api_token", ("cloudflare_zone_id",)),
            ("stape", "stape_api_key", ()),
            ("gtm", "gtm_credentials_json", ("gtm_account_id",)),
        ):
            url_field = f"{provider}_api_url"
            if getattr(self, secret).get_secret_value() or (
                getattr(self, url_field) != _PRODUCTION_URLS[url_field]
                and getattr(self, url_field) != SANDBOX[url_field]
            ):
                continue
            setattr(self, url_field, SANDBOX[url_field])
            setattr(self, secret, SecretStr(SANDBOX[secret]))
            for other in others:
                if not getattr(self, other):
                    setattr(self, other, SANDBOX[other])
            used.append(provider)
        if not self.meta_app_token.get_secret_value() and "graph.facebook.com" not in (
            self.meta_graph_url
        ):
            self.meta_app_token = SecretStr(SANDBOX["meta_app_token"])
            used.append("meta")
        self._sandbox_providers = tuple(used)
