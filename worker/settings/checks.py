"""Checks of values written as text: a VERP return path, a Sentinel's ``host:port``.

Plain functions raising ValueError with what to write instead: a section's validator
calls them, and so may any code that takes such a value.
"""

from __future__ import annotations

import ipaddress


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
