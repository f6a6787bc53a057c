"""`bounces classify PATH... --json`: one DESIGN.md JSON object per recipient per mail.

Reading files is the only I/O here; nothing is changed anywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .classify import classify_mail


def classify_paths(paths: list[str]) -> Iterator[dict[str, Any]]:
    """Yield one JSON-ready dict per recipient per mail file, in the order given.

    A file that cannot be read yields ``{"file": path, "error": "..."}`` and the run
    goes on with the next path.
    """
    for path in paths:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            yield {"file": path, "error": f"cannot read: {exc.strerror or exc}"}
            continue
        for result in classify_mail(raw):
            yield result.as_json(path)
