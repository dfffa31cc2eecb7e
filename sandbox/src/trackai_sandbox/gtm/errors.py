"""Google's JSON error envelope, as the Tag Manager API answers it.

``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``;
``google-api-python-client`` reads ``message`` and the ``errors``' ``reason`` (it retries 429,
5xx and 403s whose reason is ``rateLimitExceeded``/``userRateLimitExceeded``).
"""

from __future__ import annotations

import json
from typing import Any

GENERIC_BAD_REQUEST = "Returned an error response for your request."


class GoogleError(Exception):
    def __init__(  # noqa: PLR0917 - the fields of Google's envelope
        self,
        code: int,
        status: str,
        message: str,
        reason: str,
        domain: str = "global",
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.reason = reason
        self.domain = domain
        self.details = details
        self.headers = headers or {}

    def render(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str = GENERIC_BAD_REQUEST) -> GoogleError:
    return GoogleError(400, "INVALID_ARGUMENT", message, "badRequest")


def invalid_json(message: str) -> GoogleError:
    return GoogleError(400, "INVALID_ARGUMENT", message, "invalid")


def not_found() -> GoogleError:
    return GoogleError(404, "NOT_FOUND", "Not found or permission denied.", "notFound")


def unauthenticated(missing: bool) -> GoogleError:
    message = (
        "Request is missing required authentication credential. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
        if missing
        else "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    )
    return GoogleError(
        401,
        "UNAUTHENTICATED",
        message,
        "required" if missing else "authError",
        headers={"www-authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def quota_exceeded(project: str, limit_name: str, as_403: bool) -> GoogleError:
    message = (
        f"Quota exceeded for quota metric 'Queries' and limit '{limit_name}' of service "
        f"'tagmanager.googleapis.com' for consumer 'project_number:{project}'."
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": "tagmanager.googleapis.com",
                "consumer": f"projects/{project}",
                "quota_limit": limit_name,
            },
        }
    ]
    if as_403:
        return GoogleError(
            403, "PERMISSION_DENIED", message, "rateLimitExceeded", "usageLimits", details
        )
    return GoogleError(
        429, "RESOURCE_EXHAUSTED", message, "rateLimitExceeded", "usageLimits", details
    )


def render_5xx(status: int) -> tuple[str, bytes]:
    kinds = {
        500: ("INTERNAL", "Internal error encountered.", "backendError"),
        502: ("UNAVAILABLE", "Bad Gateway", "backendError"),
        503: ("UNAVAILABLE", "The service is currently unavailable.", "backendError"),
        504: ("DEADLINE_EXCEEDED", "The request timed out.", "backendError"),
    }
    status_name, message, reason = kinds.get(status, kinds[500])
    body = GoogleError(status, status_name, message, reason).render()
    return "application/json; charset=UTF-8", json.dumps(body).encode()
