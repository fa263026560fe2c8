"""X-Twilio-Signature checks: which URL Twilio signed, which token signed it, and the check.

The check itself is ``twilio.request_validator.RequestValidator`` (what Twilio ships); this
module only feeds it correctly (shared/reference/twilio-webhooks.md §1):

- The URL is ``THREADLINE_PUBLIC_URL`` + the *raw* path + the *raw* query exactly as received
  (never re-encoded: Twilio signs its own spelling). Fragments (connection overrides like
  ``#rc=2``) and ``user:pass@`` are never part of what Twilio signs, so they are stripped.
- Without the setting the URL would come from the request's own headers, and then a delivery
  signed with the right token for *anyone's* URL would pass. So it is rebuilt from
  ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` / ``Host`` only when the peer is one of
  ``THREADLINE_TRUSTED_PROXIES`` (addresses or networks), and only from one plain value each: a
  comma list, ``/``, ``?``, ``@`` or anything but a host[:port] is refused (400). A delivery
  from any other peer is refused (403); with neither setting every webhook is refused with
  503 (outcome ``unconfigured``: a deployment fault, which Twilio's retries outlast once fixed).
- Form POSTs sign the URL plus every parameter (all values of a repeated name); GETs sign the
  URL alone; JSON bodies (Event Streams) sign the URL, which carries ``bodySHA256`` of the raw
  body. A JSON delivery without ``bodySHA256`` is refused: the validator would otherwise skip
  the body check.
- Tokens: the subaccount's token when ``THREADLINE_AUTH_TOKENS`` names the delivery's
  ``AccountSid``; else the primary, then ``TWILIO_AUTH_TOKEN_SECONDARY`` (a token rotation).
- SharedKey signing (Twilio's Webhooks configuration API, public beta): a delivery that
  carries ``X-Twilio-Webhooks-Signature-Settings: key=<id>,algorithm=<HMAC_SHA1|HMAC_SHA256>``
  was signed with that SharedKey's secret, not an Auth Token. ``THREADLINE_WEBHOOK_SHARED_KEYS``
  maps key ids to secrets; an unknown key id or an algorithm the SDK does not support is
  refused (403) — never checked against the Auth Token instead, which would let a forger pick
  the weaker path by adding or dropping a header.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from binascii import b2a_base64
from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from workers.foundations.errors import Permanent
from workers.foundations.settings import Settings

SIGNATURE_HEADER = "x-twilio-signature"
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


class UntrustedUrl(Permanent):
    """The URL Twilio called cannot be known: ``status`` (400, 403, 503) and a plain ``message``."""

    reason = "untrusted_url"

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message
SETTINGS_HEADER = SIGNATURE_SETTINGS_HEADER.lower()
_ALGORITHMS = (HMAC_SHA1, HMAC_SHA256)
# The hash of each algorithm the SDK signs with (its _HASH_FUNCTIONS).
_DIGESTS = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


class _Keyed:
    """HMAC (RFC 2104) with one secret, its two padded keys hashed once: a signature then costs
    two hash copies and updates in C, half of what hmac.digest pays to key OpenSSL each call."""

    def __init__(self, secret: bytes, algorithm: str) -> None:
        hash_ = _DIGESTS[algorithm]
        block = hash_().block_size
        key = hash_(secret).digest() if len(secret) > block else secret
        key = key.ljust(block, b"\0")
        self._inner = hash_(bytes(b ^ 0x36 for b in key))
        self._outer = hash_(bytes(b ^ 0x5C for b in key))

    def sign(self, message: bytes) -> bytes:
        """The base64 of the HMAC of ``message``, as Twilio's header carries it."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return b2a_base64(outer.digest(), newline=False)


def _clean_base(url: str) -> str:
    """scheme://host[:port][/prefix] of a configured URL: no credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _one(name: str, value: str | None) -> str:
    """One plain proxy-header value: a comma list (a chain of proxies) is refused, since which
    hop wrote which entry cannot be told; the trusted proxy must set the header, not append."""
    value = (value or "").strip()
    if "," in value:
        raise UntrustedUrl(400, f"{name}: one value expected, not a list")
    return value


class _Params(dict):
    """Form parameters as the validator reads them: ``getall`` spares it two AttributeErrors
    per parameter (its dict fallback), which cost more than the HMAC itself."""

    def getall(self, name: str) -> list[str]:
        return [self[name]]


def _raw(value: bytes) -> str:
    # Twilio's URLs are ASCII (percent-encoded); anything else can only fail the check.
    return value.decode("utf-8", "replace").split("#", 1)[0]


def shared_key_id(settings_header: str) -> str:
    """The ``key=`` of an ``X-Twilio-Webhooks-Signature-Settings`` value ('' when absent)."""
    for part in settings_header.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "key":
            return value.strip()
    return ""


class Signatures:
    """One per process: the public base URL and a validator per configured token or key."""

    def __init__(self, settings: Settings) -> None:
        self.base = _clean_base(settings.public_url) if settings.public_url else None
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxy_set]
        self._default = [RequestValidator(t) for t in
                         (settings.twilio_auth_token, settings.twilio_auth_token_secondary) if t]
        self._by_account = {sid: RequestValidator(token)
                            for sid, token in settings.subaccount_tokens.items()}
        self._by_key = {key: RequestValidator(secret)
                        for key, secret in settings.shared_keys.items()}
        self._keys: dict[tuple[RequestValidator, str], _Keyed] = {}

    @property
    def configured(self) -> bool:
        return bool(self._default or self._by_account or self._by_key)

    def describe(self) -> str:
        """What start-up logs: how the URL that Twilio signed is known."""
        if self.base:
            return f"webhook signatures are checked over THREADLINE_PUBLIC_URL={self.base}"
        if self.proxies:
            return ("webhook signatures are checked over the URL that X-Forwarded-Proto/Host name, "
                    f"believed only from THREADLINE_TRUSTED_PROXIES={','.join(map(str, self.proxies))}")
        return ("no THREADLINE_PUBLIC_URL and no THREADLINE_TRUSTED_PROXIES: every webhook is refused "
                "with 503 until one is set")

    def trusts(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def url(self, scope: Mapping, headers: Mapping[str, str]) -> str:
        """The URL Twilio called, as it signed it; :class:`UntrustedUrl` when it cannot be known."""
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = _raw(raw_path)
        query = _raw(scope.get("query_string") or b"")
        tail = path + (f"?{query}" if query else "")
        if self.base:
            return self.base + tail
        if not self.proxies:
            raise UntrustedUrl(503, "THREADLINE_PUBLIC_URL is not set: webhooks cannot be verified")
        client = scope.get("client")
        if not self.trusts(client[0] if client else None):
            raise UntrustedUrl(403, "not from a trusted proxy, and THREADLINE_PUBLIC_URL is not set")
        proto = (_one("X-Forwarded-Proto", headers.get("x-forwarded-proto"))
                 or scope.get("scheme", "http")).lower()
        host = _one("X-Forwarded-Host", headers.get("x-forwarded-host")) or headers.get("host", "")
        if proto not in ("http", "https"):
            raise UntrustedUrl(400, "X-Forwarded-Proto: http or https expected")
        if not _HOST.fullmatch(host):
            raise UntrustedUrl(400, "X-Forwarded-Host/Host: a host[:port] expected")
        return f"{proto}://{host}{tail}"

    def signer(self, account_sid: str | None) -> str:
        """Whose token signs ``account_sid``'s deliveries: the subaccount itself when
        THREADLINE_AUTH_TOKENS names it, else '' (the account's own token and its secondary)."""
        return account_sid if account_sid and account_sid in self._by_account else ""

    def validators(self, account_sid: str | None) -> list[RequestValidator]:
        if account_sid and account_sid in self._by_account:
            return [self._by_account[account_sid]]
        return self._default

    def signers(self, account_sid: str | None,
                settings_header: str | None = None) -> tuple[list[RequestValidator], str]:
        """The validators that may have signed a delivery, and the algorithm they used."""
        if not settings_header:
            return self.validators(account_sid), HMAC_SHA1
        algorithm = get_signature_algorithm(settings_header).upper()
        found = self._by_key.get(shared_key_id(settings_header))
        if found is None or algorithm not in _ALGORITHMS:
            return [], algorithm
        return [found], algorithm

    def check_form(self, url: str, pairs: Sequence[tuple[str, str]], signature: str | None,
                   account_sid: str | None, settings_header: str | None = None) -> bool:
        """A form POST (``pairs`` = every parameter) or a GET (``pairs`` empty, the URL holds them)."""
        if not signature:
            return False
        validators, algorithm = self.signers(account_sid, settings_header)
        if not validators:
            return False
        claimed = signature.encode("utf-8", "replace")
        # What compute_signature signs for one value per name — the URL, then each name and its
        # value in name order — built with one join, and its HMAC from keys prepared once
        # (:class:`_Keyed`) instead of an hmac object per call: the URL as received is one of the
        # two spellings validate() tries (with and without the default port), so this settles
        # the usual case; validate() decides every other (repeated names, the other spelling).
        signed = (url + "".join([name + value for name, value in sorted(pairs)])).encode("utf-8") \
            if len(dict(pairs)) == len(pairs) else None
        for validator in validators:
            # hmac.compare_digest: constant time as the SDK's compare(), in C instead of a
            # Python loop over the characters.
            if signed is not None and hmac.compare_digest(self._keyed(validator, algorithm).sign(signed),
                                                          claimed):
                return True
            params: Mapping[str, str] | ImmutableMultiDict = (
                _Params(pairs) if signed is not None else ImmutableMultiDict(list(pairs)))
            if validator.validate(url, params, signature, algorithm):
                return True
        return False

    def _keyed(self, validator: RequestValidator, algorithm: str) -> _Keyed:
        found = self._keys.get((validator, algorithm))
        if found is None:
            found = self._keys[(validator, algorithm)] = _Keyed(validator.token, algorithm)
        return found

    def check_json(self, url: str, body: str, signature: str | None,
                   account_sid: str | None, settings_header: str | None = None) -> bool:
        """A JSON delivery: ``bodySHA256`` in the URL must match ``body``, the URL must be signed."""
        if not signature or "bodySHA256" not in parse_qs(urlsplit(url).query):
            return False
        validators, algorithm = self.signers(account_sid, settings_header)
        return any(v.validate(url, body, signature, algorithm) for v in validators)
