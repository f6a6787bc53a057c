"""An aiosmtpd sink for the benchmarks: accepts everything, and prints
``<unix time just before the 250> <recipient>`` for each message (flushed every 50 ms).

    python bench/aiosmtpd_sink.py PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self) -> None:
        self.out: list[str] = []

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.out.append(f"{time.time():.6f} {envelope.rcpt_tos[0]}\n")  # type: ignore[attr-defined]
        return "250 2.0.0 Ok: queued"


async def main(port: int) -> None:
    handler = Handler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink"), "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except asyncio.TimeoutError:
            pass
        if handler.out:
            lines, handler.out = handler.out, []
            sys.stdout.write("".join(lines))
            sys.stdout.flush()
    server.close()
    if handler.out:
        sys.stdout.write("".join(handler.out))
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
