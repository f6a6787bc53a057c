"""Typed settings: ``settings.toml`` plus ``OMITAMA_NOTIFY_<SECTION>__<KEY>`` overrides.

Loaded once per process (:func:`get_settings`) and passed explicitly to the code
that needs it; domain code never reads the environment itself. A bad or missing
setting raises :class:`~worker.errors.ConfigError` naming the key, which the CLI
prints as one line before exiting.

Which file (:func:`find_settings`): ``OMITAMA_NOTIFY_SETTINGS``, else the operator's
``/etc/omitama-notify/settings.toml``, else the shipped defaults — the checkout's
``settings.toml``, or in an installed wheel the copy that setup.py puts in
``worker/_shipped/`` with ``templates/mail/``. Relative data paths (outbox, var/) are
resolved against a folder fixed by that choice, never against the working directory
of a checkout or an operator's file, and never inside ``/etc`` or the installed package
(docs/operations.md has the table).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from .errors import ConfigError

ENV_PREFIX = "OMITAMA_NOTIFY_"
ENV_FILE = "OMITAMA_NOTIFY_SETTINGS"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# an installed wheel's copy of settings.toml and templates/mail/ (see setup.py); a
# checkout (and the editable install ./run makes) uses the top-level originals instead
SHIPPED_IN_PACKAGE = Path(__file__).resolve().parent / "_shipped"
ETC_FILE = Path("/etc/omitama-notify/settings.toml")
# data of a server configured in /etc (FHS: configuration in /etc, state in /var/lib)
STATE_DIR = Path("/var/lib/omitama-notify")
# upper bounds of numeric settings: far beyond any sensible value, below any overflow
DAY_S = 86_400
YEARS_10 = 3650


def check_return_path(template: str) -> str:
    """``template`` if it is a usable return path with one ``{token}`` in its local
    part, else ValueError saying what is wrong. Here, not in worker/mail/verp.py, because
    settings sit below every other module (tests/test_layers.py)."""
    if not template:
        return template
    local, at, domain = template.rpartition("@")
    if not at or template.count("{token}") != 1 or "{token}" not in local:
        raise ValueError("must be like bounce+{token}@city.omitama.ibaraki.jp "
                         "({token} once, in the part before @)")
    if any(c in template for c in "\r\n<>\",; \\") or "@" in local or not domain:
        raise ValueError("must be a plain address with {token} in it")
    return template


def check_sentinel_addr(entry: str) -> str:
    """``entry`` if it is one Sentinel's ``host:port`` (a hostname, IPv4, or IPv6 in
    brackets), else ValueError saying how to write it. An IPv6 address without brackets
    is refused: in ``::1:26379`` nothing tells the port from the address's last group."""
    host, colon, port = entry.rpartition(":")
    if not colon or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{entry!r} is not host:port (e.g. 10.0.0.1:26379; "
                         f"IPv6 as [::1]:26379)")
    if host.startswith("[") or host.endswith("]"):
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else ""
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ValueError(f"{entry!r}: brackets hold an IPv6 address only, as in "
                             f"[::1]:26379") from None
    elif ":" in host:
        try:
            ipaddress.IPv6Address(host)
            guess = f"[{host}]:{port} if {port} is the port"
        except ValueError:
            guess = "e.g. [::1]:26379"
        raise ValueError(f"{entry!r} is ambiguous: write an IPv6 address in brackets before "
                         f"the port, {guess}")
    elif any(c.isspace() or c in "[]/@" for c in host):
        raise ValueError(f"{entry!r} is not host:port (e.g. 10.0.0.1:26379)")
    return entry


class _Section(BaseModel):
    # inf and nan are refused: a non-finite duration overflows where it is used (a
    # timedelta, a Redis expiry), far from the file that set it
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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


class MailSettings(_Section):
    transport: Literal["smtp", "outbox"] = "outbox"
    from_address: str = "lib@city.omitama.ibaraki.jp"
    from_name: str = "小美玉市立図書館"
    outbox_dir: Path = Path("var/outbox")
    templates_dir: Path = Path("templates/mail")
    charset: Literal["utf-8", "iso-2022-jp"] = "utf-8"
    # right-hand side of every Message-ID we mint, so bounces can be traced back
    message_id_domain: str = "city.omitama.ibaraki.jp"
    # VERP envelope sender, e.g. bounce+{token}@city.omitama.ibaraki.jp (worker/mail/verp.py);
    # empty: every mail goes out with MAIL FROM:<from_address>, as before
    return_path: str = ""

    @field_validator("return_path")
    @classmethod
    def _verp(cls, v: str) -> str:
        return check_return_path(v)

    @field_validator("from_address")
    @classmethod
    def _simple_address(cls, v: str) -> str:
        if any(c in v for c in "\r\n<>\",; ") or v.count("@") != 1:
            raise ValueError("must be a plain address like lib@city.omitama.ibaraki.jp")
        return v

    @field_validator("from_name", "message_id_domain")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if any(ord(c) < 32 or c in "<>@\"" for c in v):
            raise ValueError("must be one line without < > @ or quotes")
        return v


class WorkerSettings(_Section):
    processes: int = Field(1, ge=1, le=64)
    threads: int = Field(8, ge=1, le=256)


class DeliverySettings(_Section):
    min_backoff_s: float = Field(30, gt=0, le=DAY_S)
    max_backoff_s: float = Field(1800, gt=0, le=DAY_S)
    # give up on a relay that keeps failing after this long, whatever the deadline
    max_retry_hours: float = Field(24, gt=0, le=24 * 60)
    # retries stop this many hours before the pickup window closes, so staff can still phone
    phone_margin_hours: float = Field(48, ge=0, le=24 * 60)
    # how long a worker may hold a hold's "sending" lease before another may take over
    lease_s: float = Field(120, gt=0, le=DAY_S)
    # how often each worker process looks for holds and messages that went missing
    sweep_interval_s: float = Field(30, gt=0, le=DAY_S)
    # moved to [retention] hold_days: a file that still sets it is refused with that pointer
    retention_days: int | None = None

    @field_validator("max_backoff_s")
    @classmethod
    def _cap_above_start(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("min_backoff_s")
        if low is not None and v < low:
            raise ValueError(f"must be at least min_backoff_s ({low:g}): the longest wait "
                             "between retries cannot be shorter than the first")
        return v

    @field_validator("retention_days")
    @classmethod
    def _moved(cls, v: int | None) -> None:
        if v is not None:
            raise ValueError("moved: set [retention] hold_days instead")
        return None


class RetentionSettings(_Section):
    """How long each kind of record keeps personal data (docs/operations.md, "Retention";
    the rules are worker/holds/retention.py). Days count from the record's own date."""

    # a hold's record (ids, card, outcome, dates; title and name are dropped when the hold
    # closes) lives this long past its pickup window: late bounces are traced through it
    hold_days: int = Field(30, ge=1, le=YEARS_10)
    # refused events (their raw payload included): long enough for the ILS team to fix
    # the producer
    refused_days: int = Field(30, ge=0, le=YEARS_10)
    # staff's records of calls made (`called`), delivery failures, the bounce-mail log
    called_days: int = Field(90, ge=0, le=YEARS_10)
    failures_days: int = Field(90, ge=0, le=YEARS_10)
    bounces_days: int = Field(90, ge=0, le=YEARS_10)
    # a patron's audit log (state changes, approvals, calls): entries older than this go
    audit_days: int = Field(400, ge=0, le=YEARS_10)
    # .eml files of the outbox transport
    outbox_days: int = Field(7, ge=0, le=YEARS_10)
    # the library's statistics (counts per day and branch; no personal data): years
    stats_days: int = Field(3660, ge=1, le=YEARS_10 * 3)
    # the worker runs the purge once a day, at this hour (Tokyo) or at its first start after
    purge_hour: int = Field(3, ge=0, le=23)


class RegistrationSettings(_Section):
    # how long the receipt code in the confirmation mail stays valid
    code_ttl_days: float = Field(14, gt=0, le=365)
    # wrong codes before the code locks (staff may still approve without it, with a reason)
    max_code_tries: int = Field(5, ge=1, le=20)
    # check the address's domain in DNS on registration (off: offline machines refuse all)
    check_dns: bool = False


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


class BounceSettings(_Section):
    # Mailman-style score: a permanent bounce adds at most one point per day …
    points_per_day: float = Field(1.0, gt=0, le=1000)
    # … the address is suspended when the score reaches this …
    threshold: float = Field(5.0, gt=0, le=1_000_000)
    # … and points older than this no longer count.
    stale_after_days: float = Field(7.0, gt=0, le=YEARS_10)
    # how long a VERP return-path token still traces a bounce to its notice
    token_days: float = Field(30.0, gt=0, le=YEARS_10)
    # unverified (forged, untraceable) bounces stored per address and day; past this cap
    # they are only counted (bounces:overcap), so a flood cannot fill Redis
    unverified_per_day: int = Field(3, ge=0, le=1_000_000)
    # where bounce mails arrive for `bounces watch` (worker/mailbox/): maildir:PATH,
    # imap://user@host/FOLDER or imaps://user@host[:port]/FOLDER; empty: off
    mailbox: str = ""
    # the IMAP password: set OMITAMA_NOTIFY_BOUNCES__PASSWORD, never in the file
    password: SecretStr = SecretStr("")
    # seconds between looks at the mailbox when the server offers no IDLE (or Maildir)
    poll_s: float = Field(30.0, gt=0, le=DAY_S)

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str) -> str:
        if v and not v.startswith(("maildir:", "imap://", "imaps://")):
            raise ValueError("must be maildir:PATH, imap://user@host/FOLDER or imaps://…")
        return v


class LoggingSettings(_Section):
    # "json": one JSON object per line (for a log collector); "text": dramatiq's lines
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # each worker process logs what it did with hold notices this often (0: never)
    summary_interval_s: float = Field(60.0, ge=0, le=DAY_S)


class MetricsSettings(_Section):
    host: str = "127.0.0.1"
    # 0 turns the Prometheus exposition off
    port: int = Field(9191, ge=0, le=65535)


class DigestSettings(_Section):
    # hold_ready events of one card for one pickup branch arriving within this many
    # seconds of the first go out as one mail; 0: one mail per hold. 900 s: staff trap
    # the day's holds in a run of a few minutes, three times a day, so one run's holds
    # for a family arrive within minutes of each other; a notice for an item kept a week
    # loses nothing by waiting 15 minutes (see worker/app/digest.py)
    gather_s: float = Field(900, ge=0, le=86400)


class ReminderSettings(_Section):
    # one 「お取り置き期限が近づいています」 mail per mailed hold not yet collected,
    # days_before its last day at hour (JST); off by default (worker/app/reminders.py)
    enabled: bool = False
    days_before: int = Field(1, ge=0, le=14)
    hour: int = Field(10, ge=0, le=23)


class OutcomeSettings(_Section):
    # the outcome stream (<key_prefix>outcomes) keeps about this many entries
    # (trimmed with MAXLEN ~): days of outcomes for an ILS that reads it now and then
    maxlen: int = Field(100_000, ge=100, le=1_000_000_000)


class StaffWritesSettings(_Section):
    # a staff action (approve, reject, remove, re-enable, a call marked done or undone) is
    # reported done only once this many replicas have it (Redis WAIT; worker/store/replicas.py).
    # 0: one Redis, no WAIT sent at all. With Sentinel: 1 (see "High availability")
    replicas: int = Field(0, ge=0, le=5)
    # how long one action waits for them; then staff are told to repeat it
    timeout_ms: int = Field(500, ge=10, le=10_000)


class DkimSettings(_Section):
    # DKIM signing by the worker (worker/mail/dkim.py); empty key_file: no signing (a
    # relay that signs needs none). The key file is checked when the worker starts.
    domain: str = ""
    selector: str = ""
    key_file: str = ""

    @field_validator("domain", "selector")
    @classmethod
    def _label(cls, v: str) -> str:
        if v and not all(part and all(c.isalnum() or c in "-_" for c in part)
                         for part in v.split(".")):
            raise ValueError("must be a DNS name like city.omitama.ibaraki.jp (letters, "
                             "digits, - and _ between dots)")
        return v.lower()

    @model_validator(mode="after")
    def _complete(self) -> "DkimSettings":
        if self.key_file and not (self.domain and self.selector):
            raise ValueError("key_file is set: domain and selector are needed too")
        return self


class DomainCheckSettings(_Section):
    # `omitama-notify check domain` (worker/mail/domaincheck.py): the addresses the relay
    # sends from, which SPF must authorise; the DNS server to ask ("" = the system's)
    relay_addresses: list[str] = []
    resolver: str = ""
    resolver_port: int = Field(53, ge=1, le=65535)
    timeout_s: float = Field(5.0, gt=0, le=60)

    @field_validator("relay_addresses")
    @classmethod
    def _ips(cls, v: list[str]) -> list[str]:
        import ipaddress
        for ip in v:
            try:
                ipaddress.ip_address(ip.strip())
            except ValueError:
                raise ValueError(f"{ip!r} is not an IP address") from None
        return [ip.strip() for ip in v]

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, v: str) -> str:
        import ipaddress
        if v:
            try:
                ipaddress.ip_address(v)
            except ValueError:
                raise ValueError(f"{v!r} is not an IP address (the DNS server to ask)") from None
        return v


class Branch(_Section):
    name: str
    address: str
    phone: str
    hours: str = ""


class Settings(_Section):
    redis: RedisSettings = RedisSettings()
    smtp: SmtpSettings = SmtpSettings()
    mail: MailSettings = MailSettings()
    worker: WorkerSettings = WorkerSettings()
    delivery: DeliverySettings = DeliverySettings()
    retention: RetentionSettings = RetentionSettings()
    registration: RegistrationSettings = RegistrationSettings()
    bounces: BounceSettings = BounceSettings()
    web: WebSettings = WebSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    outcomes: OutcomeSettings = OutcomeSettings()
    staff_writes: StaffWritesSettings = StaffWritesSettings()
    digest: DigestSettings = DigestSettings()
    reminder: ReminderSettings = ReminderSettings()
    dkim: DkimSettings = DkimSettings()
    domain_check: DomainCheckSettings = DomainCheckSettings()
    branches: dict[str, Branch]
    # folder relative data paths (outbox_dir, var/) are resolved against
    base_dir: Path = PROJECT_ROOT
    # folder of the settings file: a relative templates_dir is looked for there first
    config_dir: Path = PROJECT_ROOT
    # which settings file was used, and why (printed by `check` and at worker start)
    source: str = ""

    @field_validator("branches")
    @classmethod
    def _some_branches(cls, v: dict[str, Branch]) -> dict[str, Branch]:
        if not v:
            raise ValueError("at least one branch is needed")
        return v

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.base_dir / p

    @property
    def outbox_dir(self) -> Path:
        return self.path(self.mail.outbox_dir)

    @property
    def templates_dir(self) -> Path:
        """Absolute as given; relative: beside the settings file if that folder exists,
        else the shipped templates (an operator's file copied from the shipped one names
        templates/mail without copying the templates)."""
        p = self.mail.templates_dir
        if p.is_absolute():
            return p
        own, shipped = self.config_dir / p, shipped_dir() / p
        return shipped if not own.is_dir() and shipped.is_dir() else own

    @property
    def dkim_on(self) -> bool:
        return bool(self.dkim.key_file)

    @property
    def var_dir(self) -> Path:
        return self.base_dir / "var"


def shipped_dir() -> Path:
    """Where the shipped settings.toml and templates/mail/ are: the wheel's copy, or the
    checkout's top level."""
    return SHIPPED_IN_PACKAGE if (SHIPPED_IN_PACKAGE / "settings.toml").is_file() else PROJECT_ROOT


@dataclass(frozen=True)
class SettingsSource:
    path: Path
    data_dir: Path    # relative data paths are resolved against this
    config_dir: Path  # a relative templates_dir is looked for here first
    why: str

    def describe(self) -> str:
        data = "" if self.data_dir == self.path.parent else f"; data in {self.data_dir}"
        return f"{self.path} ({self.why}{data})"


def find_settings(environ: dict[str, str] | None = None, etc_file: Path = ETC_FILE) -> SettingsSource:
    """The settings file to use: OMITAMA_NOTIFY_SETTINGS, /etc, else the shipped defaults."""
    env = os.environ if environ is None else environ
    if env.get(ENV_FILE):
        path = Path(env[ENV_FILE]).resolve()
        return SettingsSource(path, path.parent, path.parent, f"from {ENV_FILE}")
    if etc_file.is_file():
        return SettingsSource(etc_file, STATE_DIR, etc_file.parent, "the operator's file")
    shipped = shipped_dir()
    if shipped == PROJECT_ROOT:
        return SettingsSource(shipped / "settings.toml", shipped, shipped, "shipped defaults")
    # never write inside the installed package: a first try keeps its data where it runs
    return SettingsSource(shipped / "settings.toml", Path.cwd(), shipped, "shipped defaults")


def _apply_env(data: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    """Overlay OMITAMA_NOTIFY_A__B[__C] variables; returns key → variable name."""
    origin: dict[str, str] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_FILE:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(name, "expected OMITAMA_NOTIFY_<SECTION>__<KEY>")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(name, f"{part} is not a section")
            node = child
        node[parts[-1]] = value
        origin[".".join(parts)] = name
    return origin


def _key_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2:
        return f"[{'.'.join(parts[:-1])}] {parts[-1]}"
    return parts[0] if parts else "?"


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    src = SettingsSource(path, path.parent, path.parent, "given") if path else find_settings(env)
    path = src.path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "settings file not found (set OMITAMA_NOTIFY_SETTINGS)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(str(path), f"not valid TOML: {e}") from None
    origin = _apply_env(data, env)
    data.update(base_dir=src.data_dir, config_dir=src.config_dir, source=src.describe())
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = _key_name(err["loc"])
        dotted = ".".join(str(p) for p in err["loc"])
        source = f" (from {origin[dotted]})" if dotted in origin else f" (in {path.name})"
        msg = "is missing" if err["type"] == "missing" else (
            "is not a known setting" if err["type"] == "extra_forbidden" else err["msg"])
        raise ConfigError(key, msg + source) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded on first use."""
    return load_settings()
