"""gRPC servicer of UserAdminService (`trackai user ...`): decode, call the use case, encode."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from trackai.console.v1 import console_service_pb2 as pb
from trackai.console.v1 import console_service_pb2_grpc as pb_grpc
from trackai_console.domain.accounts import AccountError, DuplicateAccount, UnknownAccount, User
from trackai_console.service_layer.accounts import Accounts, PasswordLink

T = TypeVar("T")
Context = grpc.aio.ServicerContext[Any, Any]

_ROLES = {pb.USER_ROLE_SELLER: "seller", pb.USER_ROLE_OPERATOR: "operator"}
_ROLE_CODES = {name: code for code, name in _ROLES.items()}


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _user(user: User) -> pb.User:
    message = pb.User(
        id=str(user.id),
        role=_ROLE_CODES[user.role],
        tenant_id=str(user.tenant_id or ""),
        disabled=user.disabled,
        has_password=user.has_password,
        created_at=_timestamp(user.created_at),
    )
    if user.last_login_at is not None:
        message.last_login_at.CopyFrom(_timestamp(user.last_login_at))
    return message


class UserAdminServicer(pb_grpc.UserAdminServiceServicer):
    def __init__(self, accounts: Accounts, public_url: str) -> None:
        self._accounts = accounts
        self._public_url = public_url.rstrip("/")

    def _link(self, link: PasswordLink) -> str:
        return f"{self._public_url}/senha?token={link.token}"

    async def CreateUser(
        self, request: pb.CreateUserRequest, context: Context
    ) -> pb.CreateUserResponse:
        tenant_id = await _tenant(context, request.tenant_id)
        user, link = await _call(
            context,
            lambda: self._accounts.create_user(
                request.email, _ROLES.get(request.role, ""), tenant_id, request.password or None
            ),
        )
        response = pb.CreateUserResponse(user=_user(user))
        if link is not None:
            response.password_link = self._link(link)
            response.password_link_expires_at.CopyFrom(_timestamp(link.expires_at))
        return response

    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        tenant_id = await _tenant(context, request.tenant_id)
        users = await self._accounts.list_users(tenant_id)
        return pb.ListUsersResponse(users=[_user(u) for u in users])

    async def DisableUser(
        self, request: pb.DisableUserRequest, context: Context
    ) -> pb.DisableUserResponse:
        user = await _call(context, lambda: self._accounts.disable_user(request.email))
        return pb.DisableUserResponse(user=_user(user))

    async def CreatePasswordLink(
        self, request: pb.CreatePasswordLinkRequest, context: Context
    ) -> pb.CreatePasswordLinkResponse:
        link = await _call(context, lambda: self._accounts.password_link(request.email))
        return pb.CreatePasswordLinkResponse(
            password_link=self._link(link), expires_at=_timestamp(link.expires_at)
        )


async def _tenant(context: Context, value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"tenant_id: not a UUID: {value!r}")
        raise


async def _call(context: Context, use_case: Callable[[], Awaitable[T]]) -> T:
    """Run a use case, turning account errors into gRPC status codes with their message."""
    try:
        return await use_case()
    except DuplicateAccount as exc:
        await context.abort(grpc.StatusCode.ALREADY_EXISTS, exc.message)
        raise
    except UnknownAccount as exc:
        await context.abort(grpc.StatusCode.NOT_FOUND, exc.message)
        raise
    except AccountError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        raise
