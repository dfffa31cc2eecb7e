"""`trackai keys`: credential encryption keys for the provisioner's key ring."""

from __future__ import annotations

import argparse
import base64
import os
import sys

from trackai_cli.core import Context, SubParsers, command


async def _generate(args: argparse.Namespace, _: Context) -> None:
    # 32 random bytes = one AES-256 key, in the `kid:base64` form TRACKAI_ENCRYPTION_KEYS reads.
    sys.stdout.write(f"{args.id}:{base64.b64encode(os.urandom(32)).decode()}\n")


def register(groups: SubParsers) -> None:
    keys = groups.add_parser("keys", help="credential encryption keys")
    sub = keys.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="print a new key for TRACKAI_ENCRYPTION_KEYS")
    gen.add_argument("--id", default="k1", help="key id (e.g. k2 when rotating)")
    command(gen, _generate, json_flag=False)
