"""dramatiq's own command line, with every log line in Tokyo time and its offset.

``omitama-notify worker`` runs this instead of ``python -m dramatiq``: dramatiq's main
process formats its own lines (booting, stopping) and forks the worker processes,
which inherit the setting (see :func:`worker.logs.use_tokyo_time`).
"""

from __future__ import annotations

import sys

from dramatiq.cli import main

from .logs import use_tokyo_time

if __name__ == "__main__":
    use_tokyo_time()
    sys.exit(main())
