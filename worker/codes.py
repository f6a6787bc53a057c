"""Receipt codes: six random digits, stored only as a salted, slow hash (pure).

The code proves that our mail reached the patron's inbox (docomo hides filtered
mail since 2025, so "no bounce" proves nothing). Six digits are guessable offline,
so the hash only keeps codes out of plain sight in Redis; the real protection is
the online lock after a few wrong tries and the expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from datetime import datetime, time, timedelta

from .jdate import TOKYO

_ITERATIONS = 100_000
_CODE = re.compile(r"\d{6}")


def code_expiry(registered: datetime, ttl_days: float) -> datetime:
    """The last moment the code is good for: the end (Tokyo time) of the day ``ttl_days``
    after ``registered``. The mail names that day (有効期限: 12月14日(月)まで), and a
    patron reads "until the 14th" as "through the 14th", not "until the minute I
    registered" (pure)."""
    day = (registered.astimezone(TOKYO) + timedelta(days=ttl_days)).date()
    return datetime.combine(day + timedelta(days=1), time(0), TOKYO) - timedelta(milliseconds=1)


def code_expired(expires_ms: int, at_ms: int) -> bool:
    """``expires_ms`` is the last valid millisecond (see :func:`code_expiry`)."""
    return at_ms > expires_ms


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def hash_code(code: str, salt: str | None = None) -> tuple[str, str]:
    """(salt, digest) as hex strings."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", code.encode(), bytes.fromhex(salt), _ITERATIONS)
    return salt, digest.hex()


def verify_code(code: str, salt: str, digest: str) -> bool:
    return hmac.compare_digest(hash_code(code, salt)[1], digest)


def clean_code(typed: str) -> str:
    """What staff typed (full-width digits, spaces, a hyphen) → six ASCII digits."""
    code = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", typed))
    if not _CODE.fullmatch(code):
        raise ValueError("the code is six digits, e.g. 042917")
    return code
