"""Our side of delivery: ``dkim keygen`` and ``check domain`` (worker/mail/dkim.py,
worker/mail/domaincheck.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import Settings


def cmd_keygen(args: argparse.Namespace, s: Settings) -> int:
    from ..mail.dkim import generate_key, txt_record, write_private_key

    domain = args.domain or s.dkim.domain
    selector = args.selector or s.dkim.selector
    key_file = args.key_file or s.dkim.key_file
    for name, value in (("domain", domain), ("selector", selector), ("key_file", key_file)):
        if not value:
            raise ConfigError(f"[dkim] {name}", f"is empty: set it, or give --{name.replace('_', '-')}")
    path = s.path(Path(key_file))
    pem = generate_key(args.bits)
    try:
        write_private_key(path, pem)
    except FileExistsError:
        raise ConfigError("[dkim] key_file", f"{path} exists already: a new key would break "
                          "every signature until DNS has the new record; choose another "
                          "file and selector, publish, then switch") from None
    print(f"private key written to {path} (mode 600: readable by this user only)")
    print("publish this TXT record in the DNS of the domain, then set [dkim] "
          f"domain = \"{domain}\", selector = \"{selector}\", key_file = \"{key_file}\":")
    print(txt_record(domain, selector, pem))
    return 0


def cmd_check_domain(args: argparse.Namespace, s: Settings) -> int:
    from ..mail.domaincheck import DnsError, check_domain

    where = s.domain_check.resolver or "the system's resolver"
    print(f"sender domain of {s.mail.from_address}, asking {where}")
    try:
        lines = check_domain(s)
    except DnsError as e:
        print(f"FAIL  DNS: {e}: check [domain_check] resolver")
        return 1
    for line in lines:
        print(line.text())
    return 1 if any(line.ok is False for line in lines) else 0


def add_sender_commands(sub: Any) -> None:
    d = sub.add_parser("dkim", help="DKIM signing: make a key pair")
    dsub = d.add_subparsers(dest="what", required=True)
    k = dsub.add_parser("keygen", help="write a new private key and print the TXT record to publish")
    k.add_argument("--key-file", help="where to write the key (default [dkim] key_file)")
    k.add_argument("--domain", help="d= of the signatures (default [dkim] domain)")
    k.add_argument("--selector", help="the selector (default [dkim] selector)")
    k.add_argument("--bits", type=int, default=2048, choices=(1024, 2048, 3072, 4096),
                   help="RSA key size (2048: what receivers expect; 1024 is refused by some)")
    k.set_defaults(fn=cmd_keygen)
