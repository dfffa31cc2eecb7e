"""What every `trackai` command group shares: settings, output, gRPC channels, exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import Field, SecretStr

from trackai_kit.grpc import client_channel
from trackai_kit.settings import DEFAULT_AMQP_URL, GrpcTlsSettings, KitSettings, local_dev_token

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class CliSettings(KitSettings):
    """Where the services' gRPC APIs are (the chart's `<SVC>_GRPC_TARGET` names) and the token."""

    provisioner_target: str = Field("127.0.0.1:50054", alias="PROVISIONER_GRPC_TARGET")
    ingestion_target: str = Field("127.0.0.1:50051", alias="INGESTION_GRPC_TARGET")
    matcher_target: str = Field("127.0.0.1:50052", alias="MATCHER_GRPC_TARGET")
    dispatcher_target: str = Field("127.0.0.1:50053", alias="DISPATCHER_GRPC_TARGET")
    console_target: str = Field("127.0.0.1:50056", alias="CONSOLE_GRPC_TARGET")
    agent_target: str = Field("127.0.0.1:50055", alias="AGENT_GRPC_TARGET")
    #: The operator's own token (identity ``operator``); the local stack's dev token by default.
    grpc_client_token: SecretStr = Field(
        SecretStr(local_dev_token("operator")), alias="GRPC_CLIENT_TOKEN"
    )
    #: CA that signed the services' gRPC certificates; empty = plaintext (local stack). With
    #: mTLS, the operator's client certificate and key too.
    grpc_tls_ca_file: str = Field("", alias="GRPC_TLS_CA_FILE")
    grpc_tls_cert_file: str = Field("", alias="GRPC_TLS_CERT_FILE")
    grpc_tls_key_file: str = Field("", alias="GRPC_TLS_KEY_FILE")
    timeout_s: float = Field(10.0, alias="TRACKAI_CLI_TIMEOUT")
    #: The broker, for `trackai dlq --queue` (dead-letter queues have no service API).
    amqp_url: str = Field(DEFAULT_AMQP_URL, alias="AMQP_URL")
    amqp_prefix: str = Field("", alias="AMQP_PREFIX")

    def target(self, service: str) -> str:
        return str(getattr(self, f"{service}_target"))


class Output:
    """Writes results to stdout (JSON or text) and problems to stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    @staticmethod
    def as_dict(message: Message) -> dict[str, Any]:
        return MessageToDict(message, preserving_proto_field_name=True)

    def record(self, message: Message, text: str) -> None:
        sys.stdout.write((json.dumps(self.as_dict(message)) if self.as_json else text) + "\n")

    def records(self, messages: Sequence[Message], lines: Sequence[str], header: str) -> None:
        """A list: one JSON array with --json, else a header and one line per item."""
        if self.as_json:
            sys.stdout.write(json.dumps([self.as_dict(m) for m in messages]) + "\n")
            return
        sys.stdout.write(header + "\n")
        for line in lines:
            sys.stdout.write(line + "\n")

    def json_lines(self, objects: Sequence[dict[str, Any]]) -> None:
        """One JSON object per line (exports)."""
        for obj in objects:
            sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")


@dataclass
class Context:
    """Handed to every command handler; opens one channel per service it talks to."""

    settings: CliSettings
    out: Output
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    #: The service the failing call went to, for the "cannot reach" message.
    current: str = "provisioner"

    @property
    def deadline_s(self) -> float:
        return self.settings.timeout_s

    def channel(self, service: str) -> grpc.aio.Channel:
        self.current = service
        if service not in self.channels:
            self.channels[service] = client_channel(
                self.settings.target(service),
                self.settings.grpc_client_token.get_secret_value(),
                GrpcTlsSettings(
                    ca_file=self.settings.grpc_tls_ca_file,
                    cert_file=self.settings.grpc_tls_cert_file,
                    key_file=self.settings.grpc_tls_key_file,
                ),
            )
        return self.channels[service]

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


Handler: TypeAlias = Callable[[argparse.Namespace, Context], Awaitable[int | None]]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def command(parser: argparse.ArgumentParser, handler: Handler, *, json_flag: bool = True) -> None:
    """Attach a handler (and the usual --json flag) to a sub-command's parser."""
    parser.set_defaults(handler=handler)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON")
