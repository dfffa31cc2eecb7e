"""`trackai user ...`: console accounts (create, invite, list, disable, password link)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from trackai.console.v1 import console_service_pb2 as pb
from trackai.console.v1 import console_service_pb2_grpc as pb_grpc
from trackai_cli.core import EXIT_OK, EXIT_USAGE, Context, SubParsers, command
from trackai_cli.tenants import tenant_id_of

if TYPE_CHECKING:
    from trackai.console.v1.console_service_pb2_grpc import UserAdminServiceAsyncStub

ROLES = {"seller": pb.USER_ROLE_SELLER, "operator": pb.USER_ROLE_OPERATOR}
ROLE_WORDS = {code: word for word, code in ROLES.items()}


def _stub(ctx: Context) -> UserAdminServiceAsyncStub:
    return pb_grpc.UserAdminServiceStub(ctx.channel("console"))


def _user_text(u: pb.User) -> str:
    state = "disabled" if u.disabled else ("active" if u.has_password else "invited")
    last = u.last_login_at.ToJsonString() if u.HasField("last_login_at") else "never"
    return (
        f"{u.id}  {ROLE_WORDS.get(u.role, '?'):<8} "
        f"tenant={u.tenant_id or '*'} {state} last_login={last}"
    )


def _read_password(args: argparse.Namespace) -> str | None:
    """From stdin with --password-stdin (scripts), else asked twice without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    try:
        first = getpass.getpass("Password: ")
        again = getpass.getpass("Repeat the password: ")
    except EOFError:
        sys.stderr.write("error: no terminal to ask the password on; pipe it: --password-stdin\n")
        return None
    if first != again:
        sys.stderr.write("error: the passwords differ\n")
        return None
    return first


async def _request(args: argparse.Namespace, ctx: Context, password: str) -> pb.CreateUserRequest:
    if args.role == "seller" and not args.tenant:
        raise _Usage("a seller needs --tenant (id or slug)")
    if args.role == "operator" and args.tenant:
        raise _Usage("an operator sees every tenant: drop --tenant")
    tenant_id = await tenant_id_of(args.tenant, ctx) if args.tenant else ""
    return pb.CreateUserRequest(
        email=args.email, role=ROLES[args.role], tenant_id=tenant_id, password=password
    )


class _Usage(Exception):
    pass


async def _create(args: argparse.Namespace, ctx: Context) -> int:
    password = _read_password(args)
    if password is None:
        return EXIT_USAGE
    try:
        request = await _request(args, ctx, password)
    except _Usage as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    resp = await _stub(ctx).CreateUser(request, timeout=ctx.deadline_s)
    ctx.out.record(resp, "created " + _user_text(resp.user))
    return EXIT_OK


async def _invite(args: argparse.Namespace, ctx: Context) -> int:
    try:
        request = await _request(args, ctx, "")
    except _Usage as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    resp = await _stub(ctx).CreateUser(request, timeout=ctx.deadline_s)
    ctx.out.record(
        resp,
        f"invited {_user_text(resp.user)}\n"
        f"send this one-time link (valid until {resp.password_link_expires_at.ToJsonString()}):\n"
        f"{resp.password_link}",
    )
    return EXIT_OK


async def _list(args: argparse.Namespace, ctx: Context) -> None:
    tenant_id = await tenant_id_of(args.tenant, ctx) if args.tenant else ""
    resp = await _stub(ctx).ListUsers(
        pb.ListUsersRequest(tenant_id=tenant_id), timeout=ctx.deadline_s
    )
    users = list(resp.users)
    ctx.out.records(users, [_user_text(u) for u in users], f"{len(users)} user(s)")


async def _disable(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _stub(ctx).DisableUser(
        pb.DisableUserRequest(email=args.email), timeout=ctx.deadline_s
    )
    ctx.out.record(resp.user, "disabled " + _user_text(resp.user))


async def _reset(args: argparse.Namespace, ctx: Context) -> None:
    resp = await _stub(ctx).CreatePasswordLink(
        pb.CreatePasswordLinkRequest(email=args.email), timeout=ctx.deadline_s
    )
    ctx.out.record(
        resp,
        f"one-time password link (valid until {resp.expires_at.ToJsonString()}):\n"
        f"{resp.password_link}",
    )


def _account_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--role", required=True, choices=sorted(ROLES))
    parser.add_argument("--tenant", help="tenant id or slug (sellers only)")


def register(groups: SubParsers) -> None:
    user = groups.add_parser("user", help="console accounts")
    sub = user.add_subparsers(dest="command", required=True)

    create = sub.add_parser("create", help="create an account with a password")
    _account_args(create)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    command(create, _create)

    invite = sub.add_parser(
        "invite", help="create an account without a password; prints its one-time link"
    )
    _account_args(invite)
    command(invite, _invite)

    listing = sub.add_parser(
        "list", help="list accounts (ids, roles, tenants; e-mails are kept only as hashes)"
    )
    listing.add_argument("--tenant", help="only this tenant's sellers (id or slug)")
    command(listing, _list)

    disable = sub.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("email")
    command(disable, _disable)

    reset = sub.add_parser("reset-password", help="print a one-time link to choose a new password")
    reset.add_argument("email")
    command(reset, _reset)
