"""The `trackai` operator command: a gRPC client of the services' public APIs.

Each command group is a module with a ``register(groups)`` function; adding a group is one module
and one line in ``GROUPS``. Exit codes: 0 success, 1 the service refused (message printed),
2 bad arguments, 3 a service unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import grpc

from trackai_cli import dlq, keys, matches, provision, retention, tenants, users
from trackai_cli.core import EXIT_REFUSED, EXIT_UNREACHABLE, CliSettings, Context, Output
from trackai_cli.qa import runner as qa

GROUPS = (tenants, keys, matches, dlq, provision, users, retention, qa)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trackai", description="Track AI operator command")
    groups = parser.add_subparsers(dest="group", required=True)
    for group in GROUPS:
        group.register(groups)
    return parser


async def _run(args: argparse.Namespace, settings: CliSettings) -> int:
    ctx = Context(settings, Output(getattr(args, "json", False)))
    try:
        return await args.handler(args, ctx) or 0
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            env = f"{ctx.current.upper()}_GRPC_TARGET"
            sys.stderr.write(
                f"error: cannot reach the {ctx.current} at {settings.target(ctx.current)} "
                f"({exc.code().name}); is it running? (`make run`, or set {env})\n"
            )
            return EXIT_UNREACHABLE
        sys.stderr.write(f"error: {exc.code().name}: {exc.details()}\n")
        return EXIT_REFUSED
    finally:
        await ctx.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return asyncio.run(_run(args, CliSettings()))


if __name__ == "__main__":
    sys.exit(main())
