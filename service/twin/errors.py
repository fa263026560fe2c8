"""Twilio's error answer, ``{code, message, more_info, status}``, for every refusal the twin makes.

Handlers raise :class:`TwinError`; the app turns it (and Starlette's own 404/405) into this shape,
so a client sees the same body from the twin as from Twilio whatever went wrong.
"""
from __future__ import annotations

from starlette.responses import JSONResponse

# Twilio error codes the twin uses (https://www.twilio.com/docs/errors/<code>).
INVALID = 20001          # a request parameter or body field is invalid
UNAUTHORIZED = 20003     # authentication failed
NOT_FOUND = 20404        # the requested resource was not found
METHOD_NOT_ALLOWED = 20004
CONFLICT = 20409
TOO_MANY_REQUESTS = 20429
INTERNAL = 20500
UNAVAILABLE = 20503


class TwinError(Exception):
    """A refusal: HTTP ``status`` with Twilio ``code`` and a message that names the field or id."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def invalid(message: str) -> TwinError:
    return TwinError(400, INVALID, message)


def not_found(what: str) -> TwinError:
    return TwinError(404, NOT_FOUND, f"The requested resource {what} was not found")


def body(status: int, code: int, message: str) -> dict[str, object]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def response(status: int, code: int, message: str,
             headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body(status, code, message), status_code=status, headers=headers)


def from_error(err: TwinError) -> JSONResponse:
    return response(err.status, err.code, err.message, err.headers)
