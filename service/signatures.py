"""X-Twilio-Signature checks: which URL Twilio signed, which token signed it, and the check.

The check itself is ``twilio.request_validator.RequestValidator`` (what Twilio ships); this
module only feeds it correctly (shared/reference/twilio-webhooks.md §1):

- The URL is ``THREADLINE_PUBLIC_URL`` + the *raw* path + the *raw* query exactly as received
  (never re-encoded: Twilio signs its own spelling). Without the setting it is rebuilt from
  ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` / ``Host``, because behind a TLS-terminating
  proxy the app sees ``http://`` and an internal host. Fragments (connection overrides like
  ``#rc=2``) and ``user:pass@`` are never part of what Twilio signs, so they are stripped.
- Form POSTs sign the URL plus every parameter (all values of a repeated name); GETs sign the
  URL alone; JSON bodies (Event Streams) sign the URL, which carries ``bodySHA256`` of the raw
  body. A JSON delivery without ``bodySHA256`` is refused: the validator would otherwise skip
  the body check.
- Tokens: the subaccount's token when ``THREADLINE_AUTH_TOKENS`` names the delivery's
  ``AccountSid``; else the primary, then ``TWILIO_AUTH_TOKEN_SECONDARY`` (a token rotation).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator, compare

from workers.settings import Settings

SIGNATURE_HEADER = "x-twilio-signature"


def _clean_base(url: str) -> str:
    """scheme://host[:port][/prefix] of a configured URL: no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _first(value: str | None) -> str:
    """The client-most value of a proxy header that may hold a comma-separated chain."""
    return (value or "").split(",")[0].strip()


class _Params(dict):
    """Form parameters as the validator reads them: ``getall`` spares it two AttributeErrors
    per parameter (its dict fallback), which cost more than the HMAC itself."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def _raw(value: bytes) -> str:
    # Twilio's URLs are ASCII (percent-encoded); anything else can only fail the check.
    return value.decode("utf-8", "replace").split("#", 1)[0]


class Signatures:
    """One per process: the public base URL and a validator per configured token."""

    def __init__(self, settings: Settings) -> None:
        self.base = _clean_base(settings.public_url) if settings.public_url else None
        self._default = [RequestValidator(t) for t in
                         (settings.twilio_auth_token, settings.twilio_auth_token_secondary) if t]
        self._by_account = {sid: RequestValidator(token)
                            for sid, token in settings.subaccount_tokens.items()}

    @property
    def configured(self) -> bool:
        return bool(self._default or self._by_account)

    def url(self, scope: Mapping, headers: Mapping[str, str]) -> str:
        """The URL Twilio called, as it signed it."""
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = _raw(raw_path)
        query = _raw(scope.get("query_string") or b"")
        tail = path + (f"?{query}" if query else "")
        if self.base:
            return self.base + tail
        proto = _first(headers.get("x-forwarded-proto")) or scope.get("scheme", "http")
        host = _first(headers.get("x-forwarded-host")) or headers.get("host", "")
        if not host and scope.get("server"):
            host, port = scope["server"][0], scope["server"][1]
            host = f"{host}:{port}"
        host = host.rpartition("@")[2]  # never credentials
        return f"{proto.lower()}://{host}{tail}"

    def validators(self, account_sid: str | None) -> list[RequestValidator]:
        if account_sid and account_sid in self._by_account:
            return [self._by_account[account_sid]]
        return self._default

    def check_form(self, url: str, pairs: Sequence[tuple[str, str]], signature: str | None,
                   account_sid: str | None) -> bool:
        """A form POST (``pairs`` = every parameter) or a GET (``pairs`` empty, the URL holds them)."""
        if not signature:
            return False
        params: Mapping[str, str] | ImmutableMultiDict = _Params(pairs)
        if len(params) != len(pairs):  # repeated names: every value is signed, sorted
            params = ImmutableMultiDict(list(pairs))
        for validator in self.validators(account_sid):
            # The URL as received is one of the two spellings validate() tries (with and
            # without the default port), so one HMAC settles the usual case; validate()
            # decides the rest.
            if compare(validator.compute_signature(url, params), signature):
                return True
            if validator.validate(url, params, signature):
                return True
        return False

    def check_json(self, url: str, body: str, signature: str | None,
                   account_sid: str | None) -> bool:
        """A JSON delivery: ``bodySHA256`` in the URL must match ``body``, the URL must be signed."""
        if not signature or "bodySHA256" not in parse_qs(urlsplit(url).query):
            return False
        return any(v.validate(url, body, signature) for v in self.validators(account_sid))
