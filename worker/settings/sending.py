"""The sections of the mail the worker sends and what comes back: sender and templates,
DKIM, the sender-domain check, bounce scoring and the bounce mailbox."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from .checks import check_return_path
from .section import DAY_S, YEARS_10, _Section


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
