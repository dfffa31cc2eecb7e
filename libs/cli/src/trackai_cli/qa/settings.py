"""Where the gate runs: the target's addresses and token (`QA_*`), on top of the CLI's gRPC
targets (`<SVC>_GRPC_TARGET`, `GRPC_TLS_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from trackai_cli.core import CliSettings


class QaSettings(CliSettings):
    """``QA_BASE_URL`` is ingestion's public HTTP base (webhooks, collect, track.js); the sandbox
    URLs are set only where the stack talks to the fakes (the local stack, a staging on fakes):
    the items that inspect what Meta, Cloudflare, Stape or GTM received need them."""

    base_url: str = Field("http://127.0.0.1:8001", alias="QA_BASE_URL")
    #: The operator's token; overrides GRPC_CLIENT_TOKEN when set.
    qa_token: SecretStr = Field(SecretStr(""), alias="QA_TOKEN")
    meta_sandbox_url: str = Field("", alias="QA_META_SANDBOX_URL")
    cloudflare_sandbox_url: str = Field("", alias="QA_CLOUDFLARE_SANDBOX_URL")
    stape_sandbox_url: str = Field("", alias="QA_STAPE_SANDBOX_URL")
    gtm_sandbox_url: str = Field("", alias="QA_GTM_SANDBOX_URL")
    sentry_sandbox_url: str = Field("", alias="QA_SENTRY_SANDBOX_URL")
    #: The dispatcher consumer's /metrics (the alarm check evaluates the rules against it).
    dispatcher_metrics_url: str = Field("", alias="QA_DISPATCHER_METRICS_URL")
    alarms_file: str = Field("charts/trackai/monitoring/alarms.yaml", alias="QA_ALARMS_FILE")
    promtool: str = Field("promtool", alias="QA_PROMTOOL")
    #: The QA tenant's Meta destination (the sandbox's demo pixel and token by default).
    pixel_id: str = Field("1234567890", alias="QA_PIXEL_ID")
    meta_token: SecretStr = Field(SecretStr("sandbox-token"), alias="QA_META_TOKEN")
    test_event_code: str = Field("TEST4242", alias="QA_TEST_EVENT_CODE")
    #: The named person the publish is recorded as approved by.
    approver: str = Field("QA gate (trackai qa)", alias="QA_APPROVER")
    #: Host name Chromium opens the landing page under (*.localhost is the loopback).
    landing_host: str = Field("shop.localhost", alias="QA_LANDING_HOST")
    #: A landing page reachable by the agent on the target; empty = one served by this runner.
    landing_url: str = Field("", alias="QA_LANDING_URL")
    #: Empty = a fresh `qa-<random>` tenant per run (`qa-gate`, reused, in non-destructive mode).
    tenant_slug: str = Field("", alias="QA_TENANT_SLUG")
    stape_deadline_s: float = Field(600.0, alias="QA_STAPE_DEADLINE_S")
    #: How long to wait for a sale to reach Meta, a match, a dead letter.
    settle_s: float = Field(120.0, alias="QA_SETTLE_S")
    #: Drive Chromium (Playwright) where this runner has it; false takes the API paths.
    browser: bool = Field(True, alias="QA_BROWSER")
    non_destructive: bool = Field(False, alias="QA_NON_DESTRUCTIVE")
    report_dir: str = Field("qa-report", alias="QA_REPORT_DIR")
    #: Process logs of the local stack, for the bug reports' excerpts; empty elsewhere.
    log_dir: str = Field("", alias="QA_LOG_DIR")

    def model_post_init(self, context: object) -> None:
        if self.qa_token.get_secret_value():
            self.grpc_client_token = self.qa_token
