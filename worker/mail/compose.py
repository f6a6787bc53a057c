"""Notices: jinja2 templates from ``templates/mail/`` → message bytes.

Templates are compiled once per process; rendering plus MIME assembly costs
well under a millisecond. Every value from an event enters the message only
through the body or an encoded header word (see :mod:`worker.mail.mime`).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

import jinja2

from ..contact.carriers import allow_sender_advice
from ..errors import ConfigError
from ..ils.events import HoldReady
from ..jdate import ja_date, now_tokyo
from .linewrap import wrap_text
from .mime import build_text_message, check_token
from ..settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    message_id: str    # with angle brackets, as in the header
    sender: str        # envelope MAIL FROM
    recipient: str     # envelope RCPT TO (quoted local part where needed)
    data: bytes        # the whole message, CRLF line ends


def new_token() -> str:
    """A random token: a claim's fencing token, a digest window's id, the name of a
    notice whose hold was claimed before notice tokens were derived."""
    return secrets.token_hex(12)


def notice_token(secret: bytes, hold_ids: Iterable[str]) -> str:
    """The token of the notice mailing ``hold_ids`` (its Message-ID is
    <hold.TOKEN@domain>): an HMAC of the sorted hold ids under the deployment's secret
    (worker/store/kept_secrets.py), so a mail re-sent after any loss — a retry after a
    4xx, a redelivery, an event re-announced after a failover lost the hold's record —
    carries the same Message-ID, the same the relay and the patron's mail app dedup on;
    public, yet not guessable from a hold id. One hold's is its own notice's; a digest's
    is the same wherever the same set of holds goes out together. 96 bits, lower-case
    hex: the format of :func:`new_token` (and of ``check_token``)."""
    ids = sorted(set(hold_ids))
    if not ids:
        raise ValueError("a notice names at least one hold")
    return hmac.new(secret, "\n".join(ids).encode(), hashlib.sha256).hexdigest()[:24]


def token_of(message_id: str, domain: str, kind: str = "hold") -> str | None:
    """The token inside one of our Message-IDs of ``kind`` — ``hold`` (a notice or
    digest: ``notice:TOKEN``), ``remind`` or ``reg`` (a reminder, a confirmation: the
    token worker/app/send.py remembered) — or None if it is not ours."""
    mid = message_id.strip().strip("<>")
    local, _, dom = mid.partition("@")
    if dom.lower() != domain.lower() or not local.startswith(kind + "."):
        return None
    return local[len(kind) + 1:] or None


class _Signs(Protocol):
    def sign(self, data: bytes) -> bytes: ...


class _Unsigned:
    """``[dkim]`` off (the default): the mail as composed."""

    def sign(self, data: bytes) -> bytes:
        return data


def _signer(settings: Settings) -> _Signs:
    if not settings.dkim_on:
        return _Unsigned()
    # imported only when on: dkimpy and cryptography add ~12 MB to every worker process
    # (RSS 53 → 64 MB with signing off, bench/compare.py against d1eaf21)
    from .dkim import make_signer
    return make_signer(settings)


class Composer:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        # [dkim] on: every mail is signed right after it is composed (worker/mail/dkim.py)
        self.signer = _signer(settings)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(settings.templates_dir)),
            undefined=jinja2.StrictUndefined, autoescape=False,
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        # {{ text | wrap }}: lines of at most 40 columns for a phone (worker/mail/linewrap.py).
        # Remembered per text: a notice wraps 7 texts, 4 the same for every notice of a
        # branch (name, address, hours, our sender line) and the rest often repeated (a
        # popular title); wrapping is pure Python, ~5 µs a text (15–36 µs a notice,
        # bench/README.md). 1,024 short texts: well under a megabyte.
        self.env.filters["wrap"] = functools.lru_cache(maxsize=1024)(wrap_text)
        try:
            self.hold_subject = self.env.get_template("hold_ready.subject.j2")
            self.hold_body = self.env.get_template("hold_ready.body.j2")
            self.conf_subject = self.env.get_template("address_confirmation.subject.j2")
            self.conf_body = self.env.get_template("address_confirmation.body.j2")
            # digests ([digest] gather_s > 0): loaded on first use, so templates of an
            # older copy still serve one mail per hold
            self.digest_subject: jinja2.Template | None = None
            self.digest_body: jinja2.Template | None = None
            if settings.digest.gather_s > 0:  # a missing template stops the start
                self.digest_subject = self.env.get_template("hold_ready_digest.subject.j2")
                self.digest_body = self.env.get_template("hold_ready_digest.body.j2")
        except jinja2.TemplateError as e:
            raise ConfigError("[mail] templates_dir",
                              f"cannot load templates from {settings.templates_dir}: {e}") from None

    def message_id(self, token: str) -> str:
        return f"<hold.{check_token(token)}@{self.s.mail.message_id_domain}>"

    def hold_ready(self, ev: HoldReady, recipient: str, token: str,
                   date: datetime | None = None) -> Notice:
        branch = self.s.branches[ev.pickup_branch]
        ctx = {"patron_name": ev.patron_name, "title": ev.item.title, "author": ev.item.author,
               "branch": branch, "pickup_by": ja_date(ev.pickup_by),
               "sender": self.s.mail.from_address}
        subject = " ".join(self.hold_subject.render(ctx).split())
        body = self.hold_body.render(ctx)
        return self._build(subject, body, recipient, self.message_id(token), date)

    def hold_ready_digest(self, events: list[HoldReady], recipient: str, token: str,
                          date: datetime | None = None) -> Notice:
        """One mail for several holds of one card at one pickup branch (worker/app/digest.py):
        every item, the branch once, the items by last day (earliest first). One hold
        reads exactly as :meth:`hold_ready`."""
        if len(events) == 1:
            return self.hold_ready(events[0], recipient, token, date)
        if self.digest_subject is None:
            self.digest_subject = self.env.get_template("hold_ready_digest.subject.j2")
            self.digest_body = self.env.get_template("hold_ready_digest.body.j2")
        first = events[0]
        ordered = sorted(events, key=lambda e: (e.pickup_by, e.ready_at, e.hold_id))
        items = [{"title": e.item.title, "author": e.item.author,
                  "pickup_by": ja_date(e.pickup_by)} for e in ordered]
        ctx = {"patron_name": next((e.patron_name for e in events if e.patron_name), None),
               "count": len(events), "items": items,
               "same_day": len({e.pickup_by for e in events}) == 1,
               "earliest": ja_date(ordered[0].pickup_by),
               "branch": self.s.branches[first.pickup_branch],
               "sender": self.s.mail.from_address}
        subject = " ".join(self.digest_subject.render(ctx).split())
        body = self.digest_body.render(ctx)  # type: ignore[union-attr]
        return self._build(subject, body, recipient, self.message_id(token), date)

    def reminder(self, events: list[HoldReady], recipient: str, token: str,
                 date: datetime | None = None) -> Notice:
        """The pickup reminder of one or more holds of a card at one branch
        (worker/app/reminders.py); Message-ID ``<remind.TOKEN@…>``."""
        ordered = sorted(events, key=lambda e: (e.pickup_by, e.ready_at, e.hold_id))
        ctx = {"patron_name": next((e.patron_name for e in events if e.patron_name), None),
               "items": [{"title": e.item.title, "author": e.item.author,
                          "pickup_by": ja_date(e.pickup_by)} for e in ordered],
               "branch": self.s.branches[events[0].pickup_branch],
               "sender": self.s.mail.from_address}
        subject = " ".join(self.env.get_template("reminder.subject.j2").render(ctx).split())
        body = self.env.get_template("reminder.body.j2").render(ctx)
        mid = f"<remind.{check_token(token)}@{self.s.mail.message_id_domain}>"
        return self._build(subject, body, recipient, mid, date)

    def confirmation(self, recipient: str, code: str, branch_code: str, carrier: str | None,
                     expires: str, token: str, date: datetime | None = None) -> Notice:
        """The one mail sent on registration: the receipt code on a line of its own."""
        ctx = {"code": code, "branch": self.s.branches[branch_code], "expires": expires,
               "advice": allow_sender_advice(carrier, self.s.mail.from_address),
               "sender": self.s.mail.from_address}
        subject = " ".join(self.conf_subject.render(ctx).split())
        mid = f"<reg.{check_token(token)}@{self.s.mail.message_id_domain}>"
        return self._build(subject, self.conf_body.render(ctx), recipient, mid, date)

    def _build(self, subject: str, body: str, recipient: str, message_id: str,
               date: datetime | None) -> Notice:
        m = self.s.mail
        kwargs = dict(from_name=m.from_name, from_addr=m.from_address, to_addr=recipient,
                      subject=subject, body=body, message_id=message_id,
                      date=date or now_tokyo())
        try:
            data = build_text_message(charset=m.charset, **kwargs)  # type: ignore[arg-type]
        except UnicodeEncodeError:
            # a name or title outside JIS X 0208 (e.g. 髙, ①): UTF-8 beats a garbled notice
            log.warning("notice %s: text not encodable as %s, sent as UTF-8", message_id, m.charset)
            data = build_text_message(charset="utf-8", **kwargs)  # type: ignore[arg-type]
        data = self.signer.sign(data)
        return Notice(message_id, m.from_address, recipient, data)
