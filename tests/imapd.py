"""A real Dovecot IMAP server on loopback with a throw-away config (Debian's
dovecot-imapd), serving one Maildir to one user, started and stopped without touching
a system instance. Plain IMAP without TLS: loopback only (worker/mailbox/imap.py logs in
without STARTTLS only on loopback)."""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers import free_port, wait_for

USER, PASSWORD = "bounce", "imap-test-secret"

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
instance_name = omitama-test-{port}
log_path = {dir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = nobody
default_login_user = nobody
default_internal_group = nogroup
first_valid_uid = 1
mail_location = maildir:{dir}/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
userdb {{
  driver = passwd-file
  args = {dir}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def available() -> str | None:
    """None when it can run here, else why not (the tests skip; CI sets
    OMITAMA_TEST_REQUIRE_MAIL_SERVERS so that they run and fail instead)."""
    if os.environ.get("OMITAMA_TEST_REQUIRE_MAIL_SERVERS"):
        return None
    if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
        return "Debian's dovecot-imapd is not installed (apt-get install dovecot-imapd; .ci/run does)"
    if os.geteuid() != 0:
        return "a private Dovecot must be started as root"
    return None


class Imapd:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.port = free_port()
        self.maildir = folder / "Maildir"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # nobody must reach the Maildir
        self.maildir.mkdir(exist_ok=True)
        os.chown(self.maildir, 65534, 65534)
        (folder / "users").write_text(
            f"{USER}:{{PLAIN}}{PASSWORD}:65534:65534::{folder}::userdb_mail=maildir:{self.maildir}\n")
        (folder / "dovecot.conf").write_text(CONF.format(dir=folder, port=self.port))

    @property
    def url(self) -> str:
        return f"imap://{USER}@127.0.0.1:{self.port}/INBOX"

    def start(self) -> "Imapd":
        # it forks into the background: no pipes, or waiting for them never ends
        with open(self.dir / "start.err", "wb") as err:
            r = subprocess.run(["dovecot", "-c", str(self.dir / "dovecot.conf")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                               timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"dovecot failed to start: "
                               f"{(self.dir / 'start.err').read_text()} {self.log()}")
        def logs_in() -> bool:  # listening is not enough: the auth process starts later
            try:
                c = imaplib.IMAP4("127.0.0.1", self.port, timeout=5)
                c.login(USER, PASSWORD)
                c.logout()
                return True
            except (OSError, imaplib.IMAP4.error):
                return False
        wait_for(logs_in, timeout=30)
        return self

    def stop(self) -> None:
        pidfile = self.dir / "run" / "master.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log(self) -> str:
        p = self.dir / "dovecot.log"
        return p.read_text(errors="replace") if p.exists() else ""
