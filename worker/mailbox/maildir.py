"""The bounce Maildir: what Postfix's virtual or local delivery (and Dovecot) write.

The inbox is the Maildir's ``new/`` and ``cur/`` (an IMAP client may have moved mails
to ``cur/``); ``Processed`` and ``ForStaff`` are Maildir++ subfolders (``.Processed``),
so staff see them as folders over IMAP. A move is one ``rename`` on one file system.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Collection

from ..errors import ConfigError


class MaildirBox:
    def __init__(self, root: Path, stop: threading.Event | None = None) -> None:
        self.root = root
        self.name = f"maildir:{root}"
        self.stop = stop or threading.Event()
        if not (root / "new").is_dir() or not (root / "cur").is_dir():
            raise ConfigError("[bounces] mailbox", f"{root} is not a Maildir (no new/ and cur/)")

    def pending(self) -> list[str]:
        ids = [f"{sub}/{n}" for sub in ("new", "cur") for n in os.listdir(self.root / sub)
               if not n.startswith(".")]
        return sorted(ids, key=lambda i: i.split("/", 1)[1])  # delivery order

    def read(self, mail_id: str) -> bytes:
        return (self.root / mail_id).read_bytes()

    def move(self, mail_id: str, folder: str) -> None:
        sub, name = mail_id.split("/", 1)
        if ":2," not in name:
            name += ":2,S"
        os.rename(self.root / mail_id, self._folder(folder) / "cur" / name)

    def _folder(self, folder: str) -> Path:
        path = self.root / f".{folder}"
        if not (path / "cur").is_dir():
            st = self.root.stat()
            for part in ("", "cur", "new", "tmp"):
                (path / part).mkdir(mode=0o700, exist_ok=True)
                if os.geteuid() == 0:  # as the Maildir's owner, so Dovecot can serve it
                    os.chown(path / part, st.st_uid, st.st_gid)
            (path / "maildirfolder").touch()
        return path

    def wait(self, timeout: float, skip: Collection[str] = ()) -> None:
        """Look at new/ once a second (a listdir costs nothing) until mail other than
        ``skip`` (mails set aside by the watch) is there."""
        waited = 0.0
        while waited < timeout and not self.stop.is_set():
            if any(not n.startswith(".") and f"new/{n}" not in skip
                   for n in os.listdir(self.root / "new")):
                return
            self.stop.wait(min(1.0, timeout - waited))
            waited += 1.0

    def describe(self) -> str:
        n = len(self.pending())
        if not os.access(self.root / "new", os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root}/new is not readable and writable by this user")
        return f"{self.name}: readable, {n} mail(s) waiting"

    def close(self) -> None:
        return None
