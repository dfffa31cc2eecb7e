"""``python -m trackai_sandbox serve [--only meta]``: start the local fakes."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging

from trackai_sandbox import launcher
from trackai_sandbox.settings import SandboxSettings

logger = logging.getLogger("trackai_sandbox")


def _configure_logging(settings: SandboxSettings) -> None:
    # The kit's logging module is optional at import time so the sandbox also runs from a
    # minimal install; when present it gives the same JSON logs as every service.
    try:
        kit_logging = importlib.import_module("trackai_kit.logging")
    except ImportError:
        logging.basicConfig(level=settings.log_level.upper())
        return
    kit_logging.configure_logging(settings.log, service="sandbox")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trackai_sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fakes (Meta on SANDBOX_META_PORT, ...)")
    serve.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[fake.name for fake in launcher.FAKES],
        help="serve only this fake (repeatable)",
    )
    args = parser.parse_args(argv)

    settings = SandboxSettings()
    _configure_logging(settings)
    for listener in launcher.listeners(settings, args.only):
        logger.info("sandbox %s on http://%s:%d", listener.name, listener.host, listener.port)
    asyncio.run(launcher.serve(settings, args.only))


if __name__ == "__main__":
    main()
