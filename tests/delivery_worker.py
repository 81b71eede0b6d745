"""A worker process for the delivery race tests (``tests/test_delivery_races.py``): runs
``run_due`` against a shared store until nothing has been claimed or sent for a while, handing
mails to a slow mailer that logs when each hand-over starts and ends.

    python tests/delivery_worker.py STORE_URL LOG_PATH NAME [--lease SECONDS]
        [--delay SECONDS] [--idle SECONDS] [--limit N] [--sink-url URL] [--log-checks]

The program is :func:`three_mails_program`: one scenario, ``SendMail "one" → "two" → "three" →
End``, with no waits, so one run of an enrolment writes three sends.

The mailer is a generator, like SMTP: it yields each mail's result as soon as that mail is
handed over. For each mail it writes ``start<TAB>KEY<TAB>LEAD_ID<TAB>TIME<TAB>NAME``
(``TIME`` is ``time.time()``), sleeps ``--delay`` seconds, writes the same line beginning with
``end`` and yields SENT. Each line is one ``os.write`` on a file opened with O_APPEND, so lines
from several processes never interleave.

With ``--log-checks`` the worker also writes ``check<TAB>KEY<TAB>LEAD_ID<TAB>TIME<TAB>NAME``
for every send whose claim and suppression the engine is about to read (``TIME`` is taken
before the store is asked), so a test can tell a mail whose check came after an unsubscribe was
committed from one whose check came just before it.

With ``--sink-url`` the engine tells a :class:`~nurturekit.sinks.webhook.WebhookSink` at that
URL of every hand-off owing a notice. The worker touches ``LOG_PATH.NAME.started`` when it is
ready; with ``NURTUREKIT_WORKER_GO`` set to a path, it then waits for that file to exist before
its first ``run_due`` (so several workers can start at the same moment, or at set times).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_fixtures import SENDER, UNSUBSCRIBED_EXIT

from nurturekit.engine import Engine
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.presets import seed002_scoring_model
from nurturekit.program import Program
from nurturekit.scenario import Broadcast, End, Scenario, SendMail
from nurturekit.sinks.webhook import WebhookSink
from nurturekit.storage import open_storage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner

#: The scenario every seeded enrolment is in, its first step, and its send steps in order.
SCENARIO = "three mails"
FIRST_STEP = "one"
SEND_STEPS = ("one", "two", "three")


def three_mails_program() -> Program:
    """One scenario of three mails in a row with no wait between them (then End); a lead who
    unsubscribes leaves it."""
    scenario = Scenario(
        name=SCENARIO,
        trigger=Broadcast(),
        exits=[UNSUBSCRIBED_EXIT],
        steps=[
            SendMail(id="one", template="mail_one", next="two"),
            SendMail(id="two", template="mail_two", next="three"),
            SendMail(id="three", template="mail_three", next="end"),
            End(id="end"),
        ],
        silenced={"NK104", "NK105", "NK106"},
    )
    templates = [
        Template(name="mail_one", subject="ご案内（1通目）", text="{{ name }}様\n1通目"),
        Template(name="mail_two", subject="ご案内（2通目）", text="{{ name }}様\n2通目"),
        Template(name="mail_three", subject="ご案内（3通目）", text="{{ name }}様\n3通目"),
    ]
    return Program(
        scoring=seed002_scoring_model(),
        sender=SENDER,
        scenarios=[scenario],
        templates=templates,
    )


class LogMailer:
    """Logs the start and the end of every hand-over in a file shared by all workers."""

    def __init__(self, path: str, name: str, delay: float) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.name = name
        self.delay = delay

    def _line(self, event: str, mail: OutgoingMail) -> None:
        self.write(event, mail.key, mail.lead_id)

    def write(self, event: str, key: str, lead_id: str) -> None:
        line = f"{event}\t{key}\t{lead_id}\t{time.time():.6f}\t{self.name}\n"
        os.write(self.fd, line.encode())

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        # One mail at a time, like SMTP: the engine records each result before the next.
        for mail in mails:
            self._line("start", mail)
            time.sleep(self.delay)
            self._line("end", mail)
            yield SendResult(key=mail.key, status=SendStatus.SENT)


def log_checks(storage: Any, mailer: LogMailer) -> None:
    """Make ``storage`` log a ``check`` line for each send whose claim and suppression it is
    asked to read (``hold_mail``, and the next send of ``mark_and_hold``), before it reads."""
    hold_mail = storage.hold_mail
    mark_and_hold = storage.mark_and_hold

    def logged_hold_mail(keys: Sequence[str], *args: Any) -> Any:
        for key in keys:
            mailer.write("check", key, key.split("/")[1])
        return hold_mail(keys, *args)

    def logged_mark_and_hold(*args: Any) -> Any:
        following = args[5]
        mailer.write("check", following, following.split("/")[1])
        return mark_and_hold(*args)

    storage.hold_mail = logged_hold_mail
    storage.mark_and_hold = logged_mark_and_hold


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store_url")
    parser.add_argument("log_path")
    parser.add_argument("name")
    parser.add_argument("--lease", type=float, default=60.0, help="claim lease, seconds")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per mail")
    parser.add_argument(
        "--idle", type=float, default=3.0, help="stop after this long with nothing to do"
    )
    parser.add_argument("--limit", type=int, default=50, help="run_due(limit=...)")
    parser.add_argument("--sink-url", default=None, help="a WebhookSink URL for notices")
    parser.add_argument(
        "--log-checks", action="store_true", help="log each send's check before the store reads it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format=f"{args.name} %(asctime)s %(levelname)s %(message)s"
    )

    storage = open_storage(args.store_url)
    mailer = LogMailer(args.log_path, args.name, args.delay)
    if args.log_checks:
        log_checks(storage, mailer)
    sink = None if args.sink_url is None else WebhookSink(args.sink_url, secret=b"s" * 32)
    engine = Engine(
        three_mails_program(),
        storage,
        mailer,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"r" * 32)),
        worker=args.name,
        lease=timedelta(seconds=args.lease),
        sink=sink,
    )
    Path(f"{args.log_path}.{args.name}.started").touch()
    go = os.environ.get("NURTUREKIT_WORKER_GO")
    while go and not Path(go).exists():
        time.sleep(0.002)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < args.idle:
        report = engine.run_due(limit=args.limit)
        if report.claimed or report.sent:
            quiet_since = time.monotonic()
        else:
            time.sleep(0.05)
    close = getattr(storage, "close", None)
    if close is not None:
        close()


if __name__ == "__main__":
    main()
