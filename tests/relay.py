"""A real Postfix as the city's relay, on loopback, with its own config directory.

Read this to see what the production relay needs for bounce handling (the rest is
what a throw-away instance needs to run beside none at all):

* it relays the worker's mail onward (here to a test "carrier", ``relayhost``);
* ``recipient_delimiter = +``: ``bounce+TOKEN@city.omitama.ibaraki.jp`` — the VERP
  return path of one notice — is delivered to the mailbox of ``bounce@…``;
* the bounce mailbox is a **Maildir** (a name ending in ``/``) that
  ``omitama-notify bounces watch`` reads, owned by the account the relay delivers as
  (``virtual_uid_maps``) and readable and writable by the intake;
* when the carrier refuses a recipient (5xx) Postfix itself writes the delivery-status
  report to the envelope sender, i.e. to ``bounce+TOKEN@…``, which lands there.

Started as root with ``postfix -c DIR start``; :meth:`Relay.stop` stops it (call it in
the test's cleanup, also when the test fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers import free_port

BOUNCE_DOMAIN = "city.omitama.ibaraki.jp"
NOBODY = 65534  # the uid/gid the virtual delivery agent writes the Maildir as

MAIN_CF = """\
# -- what the city's relay needs for the bounce loop --------------------------------
# the worker's mail goes onward through the carrier (production: DNS MX lookups)
relayhost = [127.0.0.1]:{carrier_port}
# bounce+TOKEN@{domain} reaches the bounce mailbox (VERP, see worker/mail/verp.py)
recipient_delimiter = +
# bounces to the library's domain are delivered into a Maildir ("bounces/": a name ending
# in / means Maildir) that `omitama-notify bounces watch` reads: [bounces] mailbox =
# "maildir:{base}/bounces"
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {base}
virtual_mailbox_maps = inline:{{ bounce@{domain}=bounces/ }}
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
# only the worker on this host may relay
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject

# -- a private throw-away instance on loopback --------------------------------------
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = relay.test
mydomain = relay.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtp_dns_support_level = disabled
alias_maps =
alias_database =
# a deferred mail gives up within a minute, and the queue is run every second
bounce_queue_lifetime = 1m
maximal_queue_lifetime = 1m
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def available() -> str | None:
    """None when it can run here, else why not (the tests skip; CI sets
    OMITAMA_TEST_REQUIRE_MAIL_SERVERS so that they run and fail instead)."""
    if os.environ.get("OMITAMA_TEST_REQUIRE_MAIL_SERVERS"):
        return None
    if shutil.which("postfix") is None and not Path("/usr/sbin/postfix").exists():
        return "Debian's postfix is not installed (apt-get install postfix; .ci/run does)"
    if os.geteuid() != 0:
        return "a private Postfix must be started as root"
    return None


class Relay:
    def __init__(self, folder: Path, carrier_port: int) -> None:
        self.dir = folder
        self.port = free_port()
        self.maildir = folder / "mail" / "bounces"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # Postfix's daemons (user postfix) must reach their folders
        (folder / "mail").mkdir(exist_ok=True)
        os.chown(folder / "mail", NOBODY, NOBODY)
        for sub in ("", "new", "cur", "tmp"):  # the bounce Maildir, as the operator makes it
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.maildir / sub, NOBODY, NOBODY)
        values = dict(carrier_port=carrier_port, domain=BOUNCE_DOMAIN, base=folder / "mail",
                      nobody=NOBODY, dir=folder, port=self.port)
        (folder / "main.cf").write_text(MAIN_CF.format(**values))
        (folder / "master.cf").write_text(MASTER_CF.format(**values))

    def start(self) -> "Relay":
        (self.dir / "queue").mkdir(exist_ok=True)
        (self.dir / "data").mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        self._postfix("start")
        return self

    def stop(self) -> None:
        self._postfix("stop", check=False)

    def log(self) -> str:
        p = self.dir / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def _postfix(self, what: str, check: bool = True) -> None:
        r = subprocess.run(["postfix", "-c", str(self.dir), what], capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise RuntimeError(f"postfix {what} failed: {r.stderr.strip()}\n{self.log()}")
