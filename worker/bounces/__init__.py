"""Pure bounce classification: SMTP replies, DSNs and carrier formats to a reason.

No I/O here (the CLI helper in :mod:`worker.bounces.cli` only reads files).  Reasons use
the taxonomy of the Sisimai bounce analyser (see :mod:`worker.bounces.model`).
"""

from .classify import classify_mail, classify_smtp_reply
from .model import REASONS, BounceResult

__all__ = ["BounceResult", "REASONS", "classify_mail", "classify_smtp_reply"]
