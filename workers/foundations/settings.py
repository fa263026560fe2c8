"""Every setting threadline reads, in one pydantic-settings class.

Nothing else in threadline reads ``os.environ``: processes call :func:`load_settings` once at
start, and an invalid value stops them there with a message that names the variable.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Twilio sends at most a few KiB; anything over this is refused with 413 before it is parsed.
MAX_WEBHOOK_BODY = 64 * 1024

# What a webhook's 200 waits for (DESIGN §3, docs/operations.md): "none" = in Redis' memory;
# "local" = fsynced to the primary's AOF (WAITAOF 1 0); "replica" = received by at least one
# replica (WAIT 1: WAITAOF 0 1 measured ~1 s, see service/webhooks/durability.py).
AckDurability = Literal["none", "local", "replica"]


def _secret_map(value: str, shape: str) -> dict[str, str]:
    """``name=secret,name=secret`` as a dict. The error names the shape, never a value: these
    hold tokens."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in value.split(","))):
        name, sep, secret = pair.partition("=")
        if not sep or not name.strip() or not secret:
            raise ValueError(f"must be {shape} pairs separated by commas")
        out[name.strip()] = secret
    return out


class Settings(BaseSettings):
    """The environment of a threadline process (DESIGN §3)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    redis_url: str = Field("redis://localhost:6379/0", validation_alias="REDIS_URL")

    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN", repr=False)
    twilio_auth_token_secondary: str | None = Field(
        None, validation_alias="TWILIO_AUTH_TOKEN_SECONDARY", repr=False
    )
    twilio_api_key: str | None = Field(None, validation_alias="TWILIO_API_KEY")
    twilio_api_secret: str | None = Field(None, validation_alias="TWILIO_API_SECRET", repr=False)
    # Subaccounts: "AC…=token,AC…=token"; the token is picked by the delivery's AccountSid.
    auth_tokens: str | None = Field(None, validation_alias="THREADLINE_AUTH_TOKENS", repr=False)
    # SharedKey webhook signing: "<key id>=<secret>,…" (X-Twilio-Webhooks-Signature-Settings).
    webhook_shared_keys: str | None = Field(None, validation_alias="THREADLINE_WEBHOOK_SHARED_KEYS",
                                            repr=False)

    public_url: str | None = Field(None, validation_alias="THREADLINE_PUBLIC_URL")
    twilio_base_url: str | None = Field(None, validation_alias="THREADLINE_TWILIO_BASE_URL")
    twilio_timeout: float = Field(10.0, gt=0, validation_alias="THREADLINE_TWILIO_TIMEOUT")
    # Seconds a forwarded webhook waits for the operator's application (service.webhooks.forwarding):
    # under Twilio's own 15 s, so Twilio hears threadline's 502 instead of timing out itself.
    forward_timeout: float = Field(10.0, gt=0, lt=15, validation_alias="THREADLINE_FORWARD_TIMEOUT")

    config_path: Path | None = Field(None, validation_alias="THREADLINE_CONFIG")
    shards: int = Field(16, ge=1, le=4096, validation_alias="THREADLINE_SHARDS")
    admin_token: str | None = Field(None, validation_alias="THREADLINE_ADMIN_TOKEN", repr=False)
    metrics_token: str | None = Field(None, validation_alias="THREADLINE_METRICS_TOKEN", repr=False)

    dedupe_window: int = Field(86400, ge=1, validation_alias="THREADLINE_DEDUPE_WINDOW_SECONDS")
    spool_dir: Path | None = Field(None, validation_alias="THREADLINE_SPOOL_DIR")
    # The spool's size cap (all its files together): a delivery that would pass it gets 503.
    spool_max_bytes: int = Field(1 << 30, ge=4096, validation_alias="THREADLINE_SPOOL_MAX_BYTES")

    # Production default "local": a 200 survives the Redis machine's death, and a Redis that
    # cannot give it (no AOF, no WAITAOF) stops the web process at start instead of losing
    # webhooks silently. `threadline dev` and the tests set "none" (their Redis keeps nothing).
    ack_durability: AckDurability = Field("local", validation_alias="THREADLINE_ACK_DURABILITY")
    # How long a group commit waits for WAITAOF/WAIT before the webhooks in it get 503; below
    # the Redis client's 5 s socket timeout, so the wait's own answer always comes back.
    ack_timeout: float = Field(2.0, gt=0, le=4.0, validation_alias="THREADLINE_ACK_TIMEOUT_SECONDS")

    batch_size: int = Field(500, ge=1, le=10000, validation_alias="THREADLINE_BATCH_SIZE")
    # The CEILING of a worker's in-flight Twilio requests: the adaptive limit starts here and
    # every 429 (Twilio's per-account concurrency, unknown and shared by all workers) lowers it
    # (workers.twilio.concurrency); also the size of the worker's HTTP connection pool.
    max_inflight: int = Field(128, ge=1, le=4096, validation_alias="THREADLINE_MAX_INFLIGHT")
    max_attempts: int = Field(8, ge=1, le=100, validation_alias="THREADLINE_MAX_ATTEMPTS")
    # Backoff of retried Twilio API calls (workers.twilio.backoff): full jitter under
    # min(cap, base·2^(attempt-1)) seconds; Retry-After from Twilio wins when it is longer.
    retry_base: float = Field(0.25, gt=0, validation_alias="THREADLINE_RETRY_BASE_SECONDS")
    retry_cap: float = Field(20.0, gt=0, validation_alias="THREADLINE_RETRY_MAX_SECONDS")
    # Seconds in one configured "minute" of statusTimeouts: 60 in production; tests and the demo
    # scale it down (1 = a minute of configuration lasts a second), and the scheduler logs it.
    minute_seconds: float = Field(60.0, gt=0, validation_alias="THREADLINE_MINUTE_SECONDS")

    # A lifecycle timer applies only once the event log has processed everything appended before
    # its deadline (workers.lifecycle.watermark); one held longer than this (real seconds, not
    # configured minutes) applies anyway and is counted (lifecycle_holds|max_hold), so one stuck
    # entry delays closes by at most this much.
    lifecycle_max_hold: float = Field(60.0, ge=0, validation_alias="THREADLINE_LIFECYCLE_MAX_HOLD_SECONDS")

    stats_retention_minutes: int = Field(
        1440, ge=1, le=10080, validation_alias="THREADLINE_STATS_RETENTION_MINUTES"
    )
    log_level: str = Field("INFO", validation_alias="THREADLINE_LOG_LEVEL")
    # GROUP_BY_PROFILE: how long a Memory profile lookup is trusted, and how long a call's
    # record (parties, conversation, active routing) outlives its last event.
    profile_cache_seconds: int = Field(300, ge=1, le=86400,
                                       validation_alias="THREADLINE_PROFILE_CACHE_SECONDS")
    call_ttl_seconds: int = Field(86400, ge=60, validation_alias="THREADLINE_CALL_TTL_SECONDS")
    # A webhook whose body has not all arrived within this is answered 408 (slow-body clients).
    body_timeout: float = Field(10.0, gt=0, validation_alias="THREADLINE_BODY_TIMEOUT_SECONDS")
    # A drain that decides no event for this long stops renewing its shard's lease and is fenced
    # off (workers.delivery.leases); longer than THREADLINE_TWILIO_TIMEOUT, so one slow request
    # is not a stall.
    drain_stall_seconds: float = Field(15.0, gt=0, validation_alias="THREADLINE_DRAIN_STALL_SECONDS")
    # A worker told to stop (SIGTERM) that has not exited within this dumps its threads' stacks to
    # its log and exits (status 1); below Kubernetes' 30 s, so the log says what was stuck.
    worker_stop_seconds: float = Field(15.0, gt=0, validation_alias="THREADLINE_WORKER_STOP_SECONDS")
    # CLOSED conversations' records and index entries are kept this long, then swept (DESIGN §3).
    retention_days: float = Field(30, gt=0, validation_alias="THREADLINE_RETENTION_DAYS")
    # Peers (IP addresses) whose X-Forwarded-Proto/Host are believed when THREADLINE_PUBLIC_URL
    # is unset; without either, webhooks are refused (service.webhooks.signatures).
    trusted_proxies: str | None = Field(None, validation_alias="THREADLINE_TRUSTED_PROXIES")
    # Passive voice (workers.delivery.callpoll): how often the scheduler's leader lists the
    # account's in-progress calls to find captured ones; 0 turns the poll off.
    call_poll_seconds: float = Field(3.0, ge=0, le=3600, validation_alias="THREADLINE_CALL_POLL_SECONDS")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://", "memory://")):
            raise ValueError("must start with redis://, rediss://, unix:// or memory://")
        return v

    @field_validator("config_path", "spool_dir", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, v: object) -> object:
        """``THREADLINE_CONFIG=`` (set but empty) means no file, not the current directory."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("public_url", "twilio_base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v.rstrip("/")

    @field_validator("ack_durability", mode="before")
    @classmethod
    def _durability(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v

    @field_validator("auth_tokens")
    @classmethod
    def _auth_tokens(cls, v: str | None) -> str | None:
        if v and not all(name.startswith("AC") for name in _secret_map(v, "AC…=token")):
            raise ValueError("must be AC…=token pairs separated by commas")
        return v or None

    @field_validator("webhook_shared_keys")
    @classmethod
    def _webhook_shared_keys(cls, v: str | None) -> str | None:
        if v:
            _secret_map(v, "<key id>=<secret>")
        return v or None

    @cached_property
    def trusted_proxy_set(self) -> frozenset[str]:
        """THREADLINE_TRUSTED_PROXIES as a set of peer addresses."""
        return frozenset(filter(None, (p.strip() for p in (self.trusted_proxies or "").split(","))))

    @cached_property
    def subaccount_tokens(self) -> dict[str, str]:
        """THREADLINE_AUTH_TOKENS as {AccountSid: token}."""
        return _secret_map(self.auth_tokens or "", "AC…=token")

    @cached_property
    def shared_keys(self) -> dict[str, str]:
        """THREADLINE_WEBHOOK_SHARED_KEYS as {key id: secret}."""
        return _secret_map(self.webhook_shared_keys or "", "<key id>=<secret>")

    @property
    def api_credentials(self) -> tuple[str, str] | None:
        """Basic-auth pair for Twilio API calls: an API key when set, else the account's token."""
        if self.twilio_api_key and self.twilio_api_secret:
            return (self.twilio_api_key, self.twilio_api_secret)
        if self.twilio_account_sid and self.twilio_auth_token:
            return (self.twilio_account_sid, self.twilio_auth_token)
        return None


class SettingsError(SystemExit):
    """Raised at start when the environment holds an invalid value; the message names it."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; on an invalid value exit with the variable's name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"invalid setting {name}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
