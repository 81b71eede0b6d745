"""A worker process for the reliability tests: runs ``run_due`` against a shared store until
nothing has been due for a while, handing mails to a mailer that appends to a log file.

    python tests/reliability_worker.py STORAGE_URL LOG_PATH WORKER_NAME [IDLE_SECONDS] [forever]

With ``forever`` it runs :meth:`Engine.run_forever` instead, until SIGTERM or SIGINT, and its
mailer takes 20 ms per mail, so a signal lands mid-batch.

Each log line is ``key<TAB>enrollment<TAB>step``, written with one ``os.write`` on a file opened
with O_APPEND, so lines from several processes never interleave. The worker touches
``LOG_PATH.WORKER_NAME.started`` when it is ready; with ``NURTUREKIT_WORKER_GO`` set to a path,
it then waits for that file to exist before it starts (benchmarks/storage.py uses it to time the
workers' run, not their start-up).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_fixtures import program

from nurturekit.engine import Engine
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner


class LogMailer:
    """Records every hand-over in a file shared by all workers."""

    def __init__(self, path: str, delay: float = 0.0) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.delay = delay

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        # One mail at a time, like SMTP: the engine records each result before the next.
        for mail in mails:
            time.sleep(self.delay)
            line = f"{mail.key}\t{mail.enrollment_id}\t{mail.step}\n".encode()
            os.write(self.fd, line)
            yield SendResult(key=mail.key, status=SendStatus.SENT)


def main() -> None:
    url, log_path, name = sys.argv[1:4]
    idle = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    forever = sys.argv[5:6] == ["forever"]
    storage = open_storage(url)
    engine = Engine(
        program(),
        storage,
        LogMailer(log_path, delay=0.02 if forever else 0.0),
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"r" * 32)),
        worker=name,
        lease=timedelta(seconds=2),
    )
    Path(f"{log_path}.{name}.started").touch()
    go = os.environ.get("NURTUREKIT_WORKER_GO")
    while go and not Path(go).exists():  # the benchmark starts every worker at once
        time.sleep(0.005)
    quiet_since = time.monotonic()
    if forever:
        engine.run_forever(idle_sleep=0.1, limit=50)
        return
    while time.monotonic() - quiet_since < idle:
        report = engine.run_due(limit=25)
        if report.claimed or report.sent:
            quiet_since = time.monotonic()
        else:
            time.sleep(0.05)


if __name__ == "__main__":
    main()
