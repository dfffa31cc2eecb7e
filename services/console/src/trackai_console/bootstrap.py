"""Composition root of the console service."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from trackai.console.v1 import console_service_pb2 as pb
from trackai.console.v1 import console_service_pb2_grpc as pb_grpc
from trackai_console.adapters.accounts_store import PostgresAccountStore
from trackai_console.adapters.agent_api import GrpcAssistant
from trackai_console.adapters.dlq import GrpcDeadLetterQueue
from trackai_console.adapters.emq_store import PostgresEmqHistory
from trackai_console.adapters.health_apis import GrpcDeliveryHealth, GrpcWebhookActivity
from trackai_console.adapters.passwords import Argon2Hasher
from trackai_console.adapters.read_apis import GrpcEventSource, GrpcMatchStats, close_channels
from trackai_console.adapters.setup_apis import GrpcSetupChecks, GrpcSetupRegistry
from trackai_console.adapters.status_feed import AmqpStatusFeed
from trackai_console.adapters.status_history import RedisStatusHistory
from trackai_console.adapters.wizard_store import PostgresWizardStore
from trackai_console.domain.accounts import LoginLimits
from trackai_console.entrypoints import web
from trackai_console.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_console.entrypoints.grpc_users import UserAdminServicer
from trackai_console.entrypoints.pages import WebConfig
from trackai_console.service_layer.accounts import Accounts
from trackai_console.service_layer.assistant import Assistant
from trackai_console.service_layer.dead_letters import DeadLetters
from trackai_console.service_layer.events import Events
from trackai_console.service_layer.live import StatusHub
from trackai_console.service_layer.overview import BuildOverview
from trackai_console.service_layer.quality import Quality
from trackai_console.service_layer.tenant_health import TenantHealthList
from trackai_console.service_layer.wizard import SetupWizard
from trackai_console.settings import Settings
from trackai_kit.grpc import client_channel
from trackai_kit.service import Resources, Wiring

SCHEMA = "console"
#: The status exchange is consumed through a private queue the feed declares itself.
TOPOLOGY = None
USER_ADMIN_SERVICE = pb.DESCRIPTOR.services_by_name["UserAdminService"].full_name


def build_accounts(settings: Settings, store: PostgresAccountStore) -> Accounts:
    return Accounts(
        store,
        Argon2Hasher(),
        session_ttl=timedelta(hours=settings.session_hours),
        link_ttl=timedelta(minutes=settings.password_link_minutes),
        invite_ttl=timedelta(hours=settings.invite_hours),
        limits=LoginLimits(
            per_email=settings.login_max_failures,
            per_address=settings.login_max_failures_per_address,
            window=timedelta(minutes=settings.login_window_minutes),
        ),
    )


def web_config(settings: Settings) -> WebConfig:
    return WebConfig(
        secure_cookies=settings.secure_cookies,
        session_max_age_s=int(settings.session_hours * 3600),
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """The web pages on the HTTP app, the status feed and the EMQ history in the background, and
    the account administration API on gRPC."""
    assert resources.pool is not None
    accounts = build_accounts(settings, PostgresAccountStore(resources.pool))
    token = settings.grpc_client_token.get_secret_value()
    channels = {
        name: client_channel(target, token, settings.grpc_tls)
        for name, target in (
            ("ingestion", settings.ingestion_target),
            ("matcher", settings.matcher_target),
            ("dispatcher", settings.dispatcher_target),
            ("provisioner", settings.provisioner_target),
            ("agent", settings.agent_target),
        )
    }
    agent_channel = channels.pop("agent")
    source = GrpcEventSource(**channels, timeout_s=settings.grpc_timeout_s)
    events = Events(source)
    shared = (
        RedisStatusHistory(
            settings.redis_url,
            # The AMQP prefix isolates the statuses consumed, so it isolates their history too.
            namespace=f"{settings.amqp_prefix}trackai:console:live:",
            size=settings.live_history,
            ttl_s=settings.live_history_hours * 3600,
        )
        if settings.redis_url
        else None
    )
    hub = StatusHub(settings.live_history, shared)
    feed = AmqpStatusFeed(settings.amqp_url, settings.amqp_prefix, hub)
    dead_letters = DeadLetters(
        GrpcDeadLetterQueue(channels["dispatcher"], timeout_s=settings.grpc_timeout_s)
    )
    delivery = GrpcDeliveryHealth(channels["dispatcher"], timeout_s=settings.grpc_timeout_s)
    webhooks = GrpcWebhookActivity(channels["ingestion"], timeout_s=settings.grpc_timeout_s)
    history = PostgresEmqHistory(resources.pool)
    quality = Quality(
        GrpcMatchStats(channels["matcher"], timeout_s=settings.grpc_timeout_s), history, delivery
    )
    overview = BuildOverview(quality, dead_letters, delivery, webhooks)
    wizard_store = PostgresWizardStore(resources.pool)
    tenant_health = TenantHealthList(source, delivery, webhooks, history, wizard_store)
    assistant = Assistant(
        GrpcAssistant(
            agent_channel,
            timeout_s=settings.grpc_timeout_s,
            turn_timeout_s=settings.agent_turn_timeout_s,
        ),
        events.tenants,
    )
    wizard = SetupWizard(
        wizard_store,
        GrpcSetupRegistry(channels["provisioner"], timeout_s=settings.grpc_timeout_s),
        # A check may call Meta and the provisioner in turn: twice the read timeout.
        GrpcSetupChecks(agent_channel, timeout_s=2 * settings.grpc_timeout_s),
    )
    uses = web.UseCases(
        accounts, events, dead_letters, quality, overview, hub, assistant, wizard, tenant_health
    )
    router = web.build_web(uses, web_config(settings))
    return Wiring(
        grpc_services=[
            (
                USER_ADMIN_SERVICE,
                partial(
                    pb_grpc.add_UserAdminServiceServicer_to_server,
                    UserAdminServicer(accounts, settings.public_url),
                ),
            )
        ],
        grpc_policy=GRPC_POLICY,
        background=[
            feed.run,
            partial(quality.keep_history, events.tenants, settings.emq_snapshot_s),
        ],
        on_shutdown=[
            partial(close_channels, *channels.values(), agent_channel),
            *([shared.close] if shared is not None else []),
        ],
        configure_http=partial(web.configure, router=router, accounts=accounts),
    )
