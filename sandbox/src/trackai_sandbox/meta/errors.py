"""Graph API error envelopes, as Meta shapes them, and the fbtrace id generator.

Every failure the fake answers is a :class:`GraphError`; the HTTP layer renders it as
``{"error": {...}}`` with the status Meta uses for that kind of error.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

_TRACE_ALPHABET = string.ascii_letters + string.digits + "_-"

#: Subcodes. Confirmed against answers observed from graph.facebook.com: 33, 460, 463, 2804003,
#: 2804019, 2804050. 2804009 comes from the project's contract (EXTERNAL-APIS.md §2). 2804001 and
#: 2804004 are the sandbox's choice for "invalid value" and "timestamp in the future": Meta does
#: not document them, and clients must branch on the code (100), never on these.
SUBCODE_OBJECT_NOT_FOUND = 33
SUBCODE_SESSION_INVALIDATED = 460
SUBCODE_SESSION_EXPIRED = 463
SUBCODE_INVALID_VALUE = 2804001
SUBCODE_EVENT_TOO_OLD = 2804003
SUBCODE_EVENT_IN_FUTURE = 2804004
SUBCODE_PURCHASE_VALUE = 2804009
SUBCODE_REQUIRED = 2804019
SUBCODE_INSUFFICIENT_CUSTOMER_INFO = 2804050

PARAMETER_ERROR_TITLE = "Server-side API parameter error"


def new_fbtrace_id(rng: random.Random) -> str:
    """A trace id shaped like Meta's: 23 URL-safe characters starting with ``A``."""
    return "A" + "".join(rng.choice(_TRACE_ALPHABET) for _ in range(22))


@dataclass
class GraphError(Exception):
    """One Graph API error answer; ``render`` adds the trace id."""

    message: str
    code: int
    status: int = 400
    type: str = "OAuthException"
    error_subcode: int | None = None
    is_transient: bool | None = None
    error_user_title: str | None = None
    error_user_msg: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def render(self, fbtrace_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.error_subcode is not None:
            body["error_subcode"] = self.error_subcode
        if self.is_transient is not None:
            body["is_transient"] = self.is_transient
        if self.error_user_title is not None:
            body["error_user_title"] = self.error_user_title
        if self.error_user_msg is not None:
            body["error_user_msg"] = self.error_user_msg
        body["fbtrace_id"] = fbtrace_id
        return {"error": body}


def invalid_parameter(subcode: int, title: str, msg: str) -> GraphError:
    """The envelope of every /events payload rejection (code 100, ``Invalid parameter``)."""
    return GraphError(
        message="Invalid parameter",
        code=100,
        error_subcode=subcode,
        is_transient=False,
        error_user_title=title,
        error_user_msg=msg,
    )


def bad_request_param(message: str) -> GraphError:
    """A request-level parameter error, worded the Graph way: ``(#100) ...``."""
    return GraphError(message=f"(#100) {message}", code=100)


def unknown_path(path: str) -> GraphError:
    return GraphError(message=f"Unknown path components: {path}", code=2500)


def missing_token() -> GraphError:
    return GraphError(message="An access token is required to request this resource.", code=104)


def unparseable_token() -> GraphError:
    # Observed on graph.facebook.com v26.0 /events: HTTP 401, code 190, no subcode.
    return GraphError(
        message="Invalid OAuth access token - Cannot parse access token", code=190, status=401
    )


def expired_token(expired_at: str, now: str) -> GraphError:
    return GraphError(
        message=(
            f"Error validating access token: Session has expired on {expired_at}. "
            f"The current time is {now}."
        ),
        code=190,
        status=401,
        error_subcode=SUBCODE_SESSION_EXPIRED,
    )


def invalidated_token() -> GraphError:
    return GraphError(
        message=(
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons."
        ),
        code=190,
        status=401,
        error_subcode=SUBCODE_SESSION_INVALIDATED,
    )


def object_not_found(object_id: str, method: str) -> GraphError:
    return GraphError(
        message=(
            f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be "
            "loaded due to missing permissions, or does not support this operation. Please read "
            "the Graph API documentation at https://developers.facebook.com/docs/graph-api"
        ),
        code=100,
        type="GraphMethodException",
        error_subcode=SUBCODE_OBJECT_NOT_FOUND,
    )
