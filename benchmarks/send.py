"""Benchmark: sending step mails, against a minimal stdlib loop doing the same job.

    python benchmarks/send.py [--leads 20000,100000] [--mailer outbox|none]

The drip workload: N leads on a fresh SQLite file, lead *i* signed up *i* mod 6 days ago; the
scenario "drip" waits 3 days after the sign-up, then sends one mail (a subject with the lead's
name, a text and an HTML body). The leads signed up 3 days ago or more are enrolled at the mail
step, due 3 days after their sign-up; the others at the same step, due later. Timed:
``Engine.run_due()`` until nothing is due, into ``OutboxMailer`` (``--mailer outbox``, the
default) or a mailer that keeps nothing (``--mailer none``).

In the same run, the minimal loop: the same leads in a plain ``sqlite3`` table, one SELECT of
the due ones, an ``email.message.EmailMessage`` per row (same subject and bodies) made into
bytes, an UPDATE per row, a commit every 500 rows.

Each side sends in a process of its own, from a file prepared before; prints sends per second
of both, their ratio (target: nurturekit ≥ 3× the loop) and each sending process's peak RSS
(target, with ``--mailer none``: at 100,000 leads ≤ 1.3× that at 10,000). Not a test: run
it by hand, on a quiet machine, with the calibration ``python -m timeit "sum(range(1000))"``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from nurturekit import Consent, Lead, ManualClock
from nurturekit.conditions import activity
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.messages import OutgoingMail, Sender, SendResult, SendStatus
from nurturekit.program import Program
from nurturekit.scenario import Enrollment, EnrollmentStatus, OnActivity, Scenario, SendMail
from nurturekit.scoring import ScoringModel
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner

NOW = datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc)
SUBJECT = "{{ name }}様、ご登録ありがとうございます"
TEXT = "{{ name }}様\n\nご登録ありがとうございます。導入事例をご紹介します。\n"
HTML = "<p>{{ name }}様</p><p>ご登録ありがとうございます。導入事例をご紹介します。</p>"
SENDER = Sender(
    name="Sells up KK",
    address="news@sellsup.example.co.jp",
    postal_address="1-2-3 Shibuya, Shibuya-ku, Tokyo 150-0002, Japan",
    unsubscribe_mailto="unsubscribe@sellsup.example.co.jp",
)

#: The opt-in record marketing mail needs (Policies.require_consent, on by default).
OPTED_IN = Consent(
    at=datetime(2026, 1, 5, tzinfo=timezone.utc), method="web form", wording="配信に同意する"
)


class Discard:
    """A mailer that keeps nothing: every mail is sent."""

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        return [SendResult(key=mail.key, status=SendStatus.SENT) for mail in mails]


def program() -> Program:
    drip = Scenario(
        name="drip",
        trigger=OnActivity(when=activity("signup")),
        steps=[SendMail(id="hello", template="hello")],
    )
    template = Template(name="hello", subject=SUBJECT, text=TEXT, html=HTML)
    return Program(scoring=ScoringModel(), sender=SENDER, scenarios=[drip], templates=[template])


def signed_up(n: int) -> datetime:
    return NOW - timedelta(days=n % 6)


def engine_on(path: Path, keep: bool) -> tuple[Engine, SQLiteStorage]:
    storage = SQLiteStorage(path)
    mailer = OutboxMailer() if keep else Discard()
    links = Links(base_url="https://sellsup.example.co.jp/nk", signer=TokenSigner(b"s" * 32))
    return Engine(program(), storage, mailer, links=links, clock=ManualClock(NOW)), storage


def prepare_nurturekit(path: Path, leads: int) -> None:
    """The leads and their enrolments, a transaction per 1,000 leads."""
    engine, storage = engine_on(path, keep=False)
    for first in range(0, leads, 1000):
        with storage.transaction():
            for n in range(first, min(first + 1000, leads)):
                engine.upsert_lead(
                    Lead(
                        id=f"l{n}",
                        email=f"l{n}@example.co.jp",
                        name=f"田中{n}",
                        consent=OPTED_IN,
                    )
                )
                at = signed_up(n)
                storage.put_enrollment(
                    Enrollment(
                        id=f"drip/l{n}/1",
                        scenario="drip",
                        lead_id=f"l{n}",
                        number=1,
                        status=EnrollmentStatus.ACTIVE,
                        step="hello",
                        due_at=at + timedelta(days=3),
                        entered_at=at,
                    )
                )
    storage.close()


def send_nurturekit(path: Path, keep: bool) -> tuple[int, float]:
    engine, storage = engine_on(path, keep)
    sent = 0
    started = time.perf_counter()
    while True:
        report = engine.run_due()
        sent += report.sent
        if not report.steps:
            break
    elapsed = time.perf_counter() - started
    storage.close()
    return sent, elapsed


def prepare_stdlib(path: Path, leads: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE leads (id TEXT PRIMARY KEY, email TEXT, name TEXT, due TEXT, sent INTEGER)"
    )
    with conn:
        conn.executemany(
            "INSERT INTO leads VALUES (?, ?, ?, ?, 0)",
            (
                (
                    f"l{n}",
                    f"l{n}@example.co.jp",
                    f"田中{n}",
                    (signed_up(n) + timedelta(days=3)).isoformat(),
                )
                for n in range(leads)
            ),
        )
    conn.close()


def send_stdlib(path: Path) -> tuple[int, float]:
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    rows = conn.execute(
        "SELECT id, email, name FROM leads WHERE sent = 0 AND due <= ?", (NOW.isoformat(),)
    ).fetchall()
    sent = 0
    for lead_id, address, name in rows:
        message = EmailMessage()
        message["From"] = f"{SENDER.name} <{SENDER.address}>"
        message["To"] = address
        message["Subject"] = SUBJECT.replace("{{ name }}", name)
        message.set_content(TEXT.replace("{{ name }}", name))
        message.add_alternative(HTML.replace("{{ name }}", name), subtype="html")
        message.as_bytes()
        conn.execute("UPDATE leads SET sent = 1 WHERE id = ?", (lead_id,))
        sent += 1
        if sent % 500 == 0:
            conn.commit()
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return sent, elapsed


def sender(args: list[str]) -> None:
    """In a child process: send from a prepared file, print sends, seconds and peak RSS."""
    which, path, keep = args[0], Path(args[1]), args[2] == "outbox"
    sent, elapsed = send_nurturekit(path, keep) if which == "nurturekit" else send_stdlib(path)
    print(json.dumps({"sent": sent, "seconds": elapsed, "peak": peak_rss()}))


def peak_rss() -> float:
    """This process's peak resident set in bytes: ``VmHWM`` (Linux), which starts again at
    ``exec``; ``ru_maxrss`` would count the parent's peak, which a child inherits."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def run_child(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        sender(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", default="20000,100000")
    parser.add_argument("--mailer", choices=["outbox", "none"], default="outbox")
    args = parser.parse_args()
    for leads in (int(n) for n in args.leads.split(",")):
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            prepare_nurturekit(folder / "nk.db", leads)
            prepare_stdlib(folder / "plain.db", leads)
            ours = run_child("nurturekit", str(folder / "nk.db"), args.mailer)
            plain = run_child("stdlib", str(folder / "plain.db"), args.mailer)
        rate, loop = ours["sent"] / ours["seconds"], plain["sent"] / plain["seconds"]
        print(
            f"{leads:,} leads: nurturekit {ours['sent']:,.0f} sends, {rate:,.0f}/s, peak RSS "
            f"{ours['peak'] / 2**20:,.0f} MB; minimal loop {plain['sent']:,.0f} sends, "
            f"{loop:,.0f}/s, peak RSS {plain['peak'] / 2**20:,.0f} MB; ratio {rate / loop:.2f}×"
        )


if __name__ == "__main__":
    main()
