"""What logs and stored records may show of an address: ``t***@docomo.ne.jp``.

One function, used by the log filter (worker/logs.py) and by everything that records
an address where people other than staff may read it (holds, failures, bounces).
"""

from __future__ import annotations

import re
import unicodedata


def mask_address(addr: str) -> str:
    """Return ``addr`` safe for logs: ``t***@docomo.ne.jp``.

    Reveals at most the first character of the local part, and the domain only when it
    looks like a domain (so a header-injection attempt cannot smuggle text into the log).
    Never raises: it is called on whatever arrived, including garbage.
    """
    if not isinstance(addr, str):
        return "***"
    text = unicodedata.normalize("NFKC", addr).strip()
    if not text:
        return "***"
    local, domain = _split_for_mask(text)
    first = ""
    for ch in local:
        if ch != '"':
            first = ch
            break
    if first and (not first.isprintable() or first.isspace()):
        first = "?"
    masked_local = f"{first}***"
    if domain is None:
        return masked_local
    domain = domain.lower()
    if 0 < len(domain) <= 253 and re.fullmatch(r"[a-z0-9.-]+", domain):
        return f"{masked_local}@{domain}"
    return f"{masked_local}@?"


def _split_for_mask(text: str) -> tuple[str, str | None]:
    """Split for masking: a quoted local part may hold '@', otherwise the first '@' wins."""
    if text.startswith('"'):
        close = text.find('"', 1)
        if close != -1 and text[close + 1 : close + 2] == "@":
            return text[: close + 1], text[close + 2 :]
    local, at, domain = text.partition("@")
    return local, (domain if at else None)
