"""Composition root of the agent service: the tools on their adapters, the conversation on the
session store, the AgentService servicer and the support-webhook relay."""

from __future__ import annotations

import logging
from functools import partial

from trackai.agent.v1 import agent_service_pb2 as pb
from trackai.agent.v1 import agent_service_pb2_grpc as pb_grpc
from trackai_agent.adapters.grpc_clients import GrpcIngestion, GrpcProvisioner
from trackai_agent.adapters.meta_graph import HttpxMetaGraph
from trackai_agent.adapters.renderer import ChromiumRenderer
from trackai_agent.adapters.repository import PostgresSessionStore
from trackai_agent.adapters.support_webhook import SupportWebhookRelay
from trackai_agent.adapters.web import FetchLimits, SafeFetcher
from trackai_agent.entrypoints.grpc_access import POLICY as GRPC_POLICY
from trackai_agent.entrypoints.grpc_agent import AgentServicer
from trackai_agent.service_layer.conversation import Conversation, ConversationConfig
from trackai_agent.service_layer.ports import LanguageModel
from trackai_agent.service_layer.tools import SetupTools, ToolConfig
from trackai_agent.settings import Settings
from trackai_kit.grpc import client_channel
from trackai_kit.service import Resources, Wiring

SCHEMA = "agent"
TOPOLOGY = None
AGENT_SERVICE = pb.DESCRIPTOR.services_by_name["AgentService"].full_name


def build_tools(settings: Settings) -> tuple[SetupTools, list[object]]:
    """The six tools on their adapters, and what must be closed at shutdown."""
    token = settings.grpc_client_token.get_secret_value()
    provisioner = client_channel(settings.provisioner_target, token, settings.grpc_tls)
    ingestion = client_channel(settings.ingestion_grpc_target, token, settings.grpc_tls)
    meta = HttpxMetaGraph(
        settings.meta_graph_url,
        settings.meta_api_version,
        settings.meta_app_token.get_secret_value(),
    )
    fetcher = SafeFetcher(
        FetchLimits(
            max_bytes=settings.fetch_max_bytes,
            timeout_s=settings.fetch_timeout_s,
            max_redirects=settings.fetch_max_redirects,
            allow_loopback=settings.fetch_allow_loopback,
            ca_file=settings.fetch_ca_file,
        )
    )
    renderer = (
        ChromiumRenderer(settings.chromium_path, fetcher.guard) if settings.chromium_path else None
    )
    tools = SetupTools(
        GrpcProvisioner(provisioner, settings.grpc_timeout_s),
        GrpcIngestion(ingestion, settings.grpc_timeout_s),
        meta,
        fetcher,
        renderer,
        ToolConfig(
            meta_app_id=settings.meta_app_id, ingestion_public_url=settings.webhook_base_url
        ),
    )
    return tools, [provisioner, ingestion, meta]


def build_model(settings: Settings) -> LanguageModel | None:
    if not settings.llm_enabled:
        return None
    # Imported only when a model is configured: the SDK's types take seconds to import, which
    # the guided flow (and every start of a pod without a key) does not need.
    from trackai_agent.adapters.llm import OpenAiChat

    return OpenAiChat(
        settings.llm_base_url,
        settings.llm_api_key.get_secret_value(),
        settings.llm_model,
        settings.llm_timeout_s,
    )


def conversation_config(settings: Settings) -> ConversationConfig:
    return ConversationConfig(
        max_tool_calls_per_turn=settings.max_tool_calls_per_turn,
        max_session_tokens=settings.max_session_tokens,
        transcript_url_template=settings.transcript_url_template,
        support_webhook=bool(settings.support_webhook_url.get_secret_value()),
    )


async def wire(settings: Settings, resources: Resources) -> Wiring:
    """HTTP health/readiness, AgentService on gRPC, and the support-webhook relay."""
    assert resources.pool is not None
    # httpx logs request URLs at INFO, and Graph's debug_token carries the seller's token in its
    # query string: keep those loggers at WARNING.
    for noisy in ("httpx", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    store = PostgresSessionStore(resources.pool)
    tools, closable = build_tools(settings)
    model = build_model(settings)
    if model is not None:
        closable.append(model)
    conversation = Conversation(store, tools, model, conversation_config(settings))
    background = []
    webhook_url = settings.support_webhook_url.get_secret_value()
    if webhook_url:
        relay = SupportWebhookRelay(resources.pool, webhook_url)
        closable.append(relay)
        background.append(relay.run)

    async def close() -> None:
        for resource in closable:
            closer = getattr(resource, "aclose", None) or getattr(resource, "close")  # noqa: B009
            await closer()

    return Wiring(
        grpc_services=[
            (
                AGENT_SERVICE,
                partial(
                    pb_grpc.add_AgentServiceServicer_to_server,
                    AgentServicer(conversation, store, tools),
                ),
            )
        ],
        grpc_policy=GRPC_POLICY,
        background=background,
        on_shutdown=[close],
    )
