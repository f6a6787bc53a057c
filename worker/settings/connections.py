"""The sections of what the worker connects to and listens on: Redis (one server or
Sentinel), the SMTP relay, the staff web page, the metrics endpoint."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from .checks import check_sentinel_addr
from .section import DAY_S, _Section


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    # dramatiq's own key namespace; the ILS writes into it, so the default is the contract.
    namespace: str = "dramatiq"
    # prefix of every key this worker owns (see worker/store/keys.py)
    key_prefix: str = "omitama:"
    # start a private redis-server under var/ when nothing answers at `url` (first runs)
    start_private: bool = False
    # dramatiq: a worker silent this long is dead, and its unacknowledged messages are
    # given to others (at the next queue maintenance); dramatiq's default
    heartbeat_timeout_ms: int = Field(60_000, ge=100, le=DAY_S * 1000)
    # dramatiq: out of a million broker commands, how many also run queue maintenance
    # (re-queue a dead worker's messages, purge old dead letters); dramatiq's default
    maintenance_chance: int = Field(1000, ge=0, le=1_000_000)
    # Redis Sentinel (docs/operations.md, "High availability"): host:port of each Sentinel
    # and the name they monitor the primary under; both empty = the one Redis at `url`.
    # With them, `url` gives only the scheme (rediss:// = TLS), user, password and db.
    sentinels: list[str] = []
    master_name: str = Field("", validate_default=True)
    # the Sentinels' own password (requirepass of sentinel.conf): environment only
    sentinel_password: SecretStr = SecretStr("")
    # with Sentinel: how long a command waits for a new primary before it fails
    failover_wait_s: float = Field(30.0, ge=1, le=600)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v

    @field_validator("sentinels", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        # from the environment: OMITAMA_NOTIFY_REDIS__SENTINELS="10.0.0.1:26379,10.0.0.2:26379"
        return [p for p in v.replace(",", " ").split()] if isinstance(v, str) else v

    @field_validator("sentinels")
    @classmethod
    def _host_port(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for entry in v:
            check_sentinel_addr(entry.strip())
        if v and str(info.data.get("url", "")).startswith("unix://"):
            raise ValueError("need [redis] url to be redis:// or rediss:// (its db, user and "
                             "password are used; unix:// names no data node)")
        if v and info.data.get("start_private"):
            raise ValueError("need [redis] start_private = false (the private server is for "
                             "first runs on one machine)")
        return [e.strip() for e in v]

    @field_validator("master_name")
    @classmethod
    def _with_sentinels(cls, v: str, info: ValidationInfo) -> str:
        if "sentinels" not in info.data:
            return v  # sentinels itself was refused
        if info.data["sentinels"] and not v:
            raise ValueError("is missing: with sentinels set, give the name they monitor the "
                             "primary under (sentinel monitor NAME … in sentinel.conf)")
        if v and not info.data["sentinels"]:
            raise ValueError(f"{v!r} needs [redis] sentinels (host:port of each Sentinel); "
                             f"leave both empty for one Redis at url")
        return v


class SmtpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    username: str = ""
    # Secrets belong in the environment (OMITAMA_NOTIFY_SMTP__PASSWORD), never in the file.
    password: SecretStr = SecretStr("")
    starttls: bool = False
    tls: bool = False
    timeout: float = Field(30.0, gt=0, le=600)
    validate_certs: bool = True
    cert_bundle: str = ""
    # connections kept open per worker process; reused across messages
    pool_size: int = Field(4, ge=1, le=64)
    helo_name: str = ""

    @field_validator("tls")
    @classmethod
    def _one_tls(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("starttls"):
            raise ValueError("tls (TLS from the first byte, port 465) and starttls (upgrade "
                             "on port 25/587) cannot both be true: choose one")
        return v


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # signs session cookies; set OMITAMA_NOTIFY_WEB__SESSION_SECRET in production.
    # Empty: a random secret per start (everyone is logged out on restart).
    session_secret: SecretStr = SecretStr("")
    # a session ends this long after login at the latest (the cookie itself is a
    # browser-session cookie: closing the browser on a shared counter PC ends it too) …
    session_max_age_s: int = Field(8 * 3600, ge=60, le=30 * DAY_S)
    # … and after this long without a page being opened
    session_idle_s: int = Field(30 * 60, ge=60, le=30 * DAY_S)
    # failed logins for one staff id from one client before that client is refused for
    # the window (a client that logged in as that id before is only slowed down)
    login_max_failures: int = Field(5, ge=1, le=10_000)
    # failed logins from one client address over all staff ids, and for one staff id
    # from all clients together (the ceiling), before clients new to the id are refused
    login_max_failures_per_client: int = Field(20, ge=1, le=1_000_000)
    login_max_failures_per_id: int = Field(30, ge=1, le=1_000_000)
    login_window_s: int = Field(900, ge=10, le=30 * DAY_S)
    # addresses (or networks, "10.0.0.0/8") of reverse proxies whose X-Forwarded-For is
    # believed; empty: the header is ignored and the connecting address counts
    trusted_proxies: list[str] = []
    # true when staff reach the page over HTTPS (a TLS proxy in front of it): the session
    # cookie is then marked Secure, so a browser never sends it over plain HTTP
    secure_cookies: bool = False

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an IP address or network") from None
        return [n.strip() for n in v]


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    # 0 turns the Prometheus exposition off
    port: int = Field(9191, ge=0, le=65535)
