"""What the HTTP entry points share: the capped body reader, and refusals as one exception turned
into one JSON shape (``{"error": code, "detail": ...}``) wherever a request is answered.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


class Refused(Exception):
    """An answer other than the route's own; raised anywhere in a request, answered once."""

    def __init__(
        self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status,
            content={"error": self.error, "detail": self.detail},
            headers=self.headers or None,
        )


async def read_capped(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit`` bytes: ``Content-Length`` is
    checked first, then the bytes as they stream, so a lying sender is cut off at the cap."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
