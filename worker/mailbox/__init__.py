"""Automatic bounce intake: the mailbox named by ``[bounces] mailbox``, read by
``omitama-notify bounces watch`` (a process of its own, next to the worker).

* ``maildir:PATH`` — the Maildir the relay delivers bounces into (:mod:`.maildir`);
* ``imap://user@host[:port]/FOLDER`` or ``imaps://…`` — a folder on the city's mail
  server, password from ``OMITAMA_NOTIFY_BOUNCES__PASSWORD``, certificates verified,
  IDLE where the server offers it, else polled every ``[bounces] poll_s`` (:mod:`.imap`).

Each mail is ingested (:func:`worker.app.ingest.ingest_one`) and only *then* moved out of
the inbox: into the folder ``Processed``, or ``ForStaff`` when it was not understood
(unreadable, not a bounce nor any known automatic reply) — kept for a person, never
deleted. A crash between recording and moving leaves the mail in the inbox; read
again, its fingerprint says it was ingested, so it counts once and is moved then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Protocol

from ..errors import ConfigError
from ..settings import Settings

PROCESSED = "Processed"
FOR_STAFF = "ForStaff"


class Mailbox(Protocol):
    name: str

    def pending(self) -> list[str]: ...       # ids of the mails waiting in the inbox
    def read(self, mail_id: str) -> bytes: ...
    def move(self, mail_id: str, folder: str) -> None: ...
    # until new mail may be there (other than ``skip``, mails set aside), or timeout
    def wait(self, timeout: float, skip: Collection[str] = ()) -> None: ...
    def describe(self) -> str: ...            # for `check`: reachable, readable, how many
    def close(self) -> None: ...


def open_mailbox(settings: Settings) -> Mailbox:
    url = settings.bounces.mailbox
    if url.startswith("maildir:"):
        from .maildir import MaildirBox
        return MaildirBox(settings.path(Path(url[len("maildir:"):])))
    if url.startswith(("imap://", "imaps://")):
        from .imap import ImapBox
        return ImapBox.connect(url, settings.bounces.password.get_secret_value())
    raise ConfigError("[bounces] mailbox", "is not set: name the mailbox bounces arrive in "
                      "(maildir:PATH, imap://user@host/FOLDER or imaps://…)")
