"""docs/getting-started.md, "From install to a running worker", run as written: every command
in its own process, every file saved as the page says, against a real SMTP server (aiosmtpd on
127.0.0.1 with STARTTLS and a login) and a real webhook receiver. Only the SMTP server's
address, the webhook's URL and today's date are put in for the page's examples."""

from __future__ import annotations

import email
import email.policy
import http.server
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from nurturekit import Engine, __version__
from nurturekit.sinks import verify_signature

DOC = Path(__file__).parent.parent / "docs" / "getting-started.md"
LOCALHOST = "127.0.0.1"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass
class Inbox:
    """An aiosmtpd handler: the messages it took, with whether they came over TLS and who
    logged in."""

    messages: list[tuple[EmailMessage, bool, str | None]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None and isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        tls = server.transport.get_extra_info("ssl_object") is not None
        login = session.auth_data.login.decode() if session.auth_data else None
        self.messages.append((message, tls, login))
        return "250 2.0.0 accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m, _, _ in self.messages if m["To"] == address]


def _login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data == (b"marketing", b"change-me")
    return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    """A STARTTLS SMTP server that wants the page's login, its port, and the CA file a client
    must trust (given to the commands as SSL_CERT_FILE)."""
    ca = trustme.CA()
    import ssl

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(server_tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    for attempt in range(5):
        with socket.socket() as probe:
            probe.bind((LOCALHOST, 0))
            port: int = probe.getsockname()[1]
        controller = Controller(
            inbox,
            hostname=LOCALHOST,
            port=port,
            tls_context=server_tls,
            require_starttls=True,
            authenticator=_login,
            auth_require_tls=True,
        )
        try:
            controller.start()
            break
        except OSError:  # another process took the port between the probe and the bind
            if attempt == 4:
                raise
    yield inbox, port, ca_file
    controller.stop()


class _Hooks(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[list[tuple[dict[str, str], bytes]], str]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Hooks", (_Hooks,), {"received": received})
    server = http.server.ThreadingHTTPServer((LOCALHOST, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received, f"http://{LOCALHOST}:{server.server_address[1]}/hooks/nurturekit"
    server.shutdown()
    server.server_close()


@dataclass
class Page:
    """The walk-through's steps in order: ("run", command), ("save", name, text),
    ("append", text), ("output", text) (what a command prints), as the page gives them."""

    steps: list[tuple[str, ...]]


def walkthrough(start_at: str = "## From install to a running worker") -> Page:
    """The steps of a section of the page, up to the next section (``## ``)."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(start_at)
    end = text.index("\n## ", start + len(start_at))
    part = text[start:end]
    steps: list[tuple[str, ...]] = []
    for fence in FENCE.finditer(part):
        # The paragraph before the block says what it is.
        before = " ".join(part[: fence.start()].strip().split("\n\n")[-1].split())
        language, body = fence.groups()
        if language == "sh":
            for line in body.replace("\\\n", " ").splitlines():
                if line.strip() and not line.startswith("#"):
                    steps.append(("run", line.strip()))
            continue
        saved = re.search(r"[Ss]ave this as `([^`]+)`", before)
        if language == "text":
            steps.append(("output", body))
        elif language == "toml":
            assert "mine.toml" in before, before
            steps.append(("append", body))
        elif saved is not None:
            steps.append(("save", saved.group(1), body))
        else:
            raise AssertionError(f"a {language} block the test does not know what to do with")
    return Page(steps)


def test_the_page_has_the_steps_a_new_user_takes() -> None:
    commands = [
        step[1].split()[1]
        for step in walkthrough().steps
        if step[0] == "run"
        if step[1].startswith("nurturekit")
    ]
    assert commands == [
        "init",
        "validate",
        "import",
        "import",
        "test-send",
        "preview",
        "import",
        "run",
        "status",
        "explain",
        "handoffs",
        "feedback",
        "export",
        "export",
        "report",
    ]


def test_from_install_to_a_running_worker_as_the_page_says(
    tmp_path: Path,
    smtp: tuple[Inbox, int, Path],
    webhook: tuple[list[tuple[dict[str, str], bytes]], str],
) -> None:
    inbox, port, ca_file = smtp
    received, hook_url = webhook
    now = datetime.now(timezone.utc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTUREKIT_")}
    env["SSL_CERT_FILE"] = str(ca_file)
    outputs: dict[str, str] = {}

    def command(line: str) -> list[str]:
        argv = shlex.split(line)
        assert argv[0] == "nurturekit"
        return [sys.executable, "-m", "nurturekit", *argv[1:]]

    for step in walkthrough().steps:
        if step[0] == "append":
            table = step[1].replace('host = "smtp.example.com"', f'host = "{LOCALHOST}"')
            table = table.replace("port = 587", f"port = {port}")
            table = table.replace("https://crm.example.com/hooks/nurturekit", hook_url)
            with open(tmp_path / "mine.toml", "a", encoding="utf-8") as program:
                program.write("\n" + table)
        elif step[0] == "save":
            body = step[2]
            if step[1] == "today.jsonl":
                # "with today's date and time in at": minutes ago, in Tokyo time.
                for minutes, old in enumerate(sorted(set(re.findall(r'"at": "([^"]+)"', body)))):
                    at = now - timedelta(minutes=10 - minutes)
                    body = body.replace(
                        old, at.astimezone(timezone(timedelta(hours=9))).isoformat()
                    )
            (tmp_path / step[1]).write_text(body, encoding="utf-8")
        elif step[1].startswith("export "):
            name, _, value = step[1].removeprefix("export ").partition("=")
            env[name] = value
        elif step[1].startswith("nurturekit run "):
            worker(command(step[1]), tmp_path, env, inbox, received)
        else:
            done = subprocess.run(
                command(step[1]), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, (step[1], done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            outputs[step[1].split()[1] + " " + step[1].split()[2]] = done.stdout + done.stderr

    # 2. three leads in; the bad-value warnings are none (every value is one the rules know).
    assert "leads: 3 read, 3 imported" in outputs["import leads.csv"]
    assert "warning" not in outputs["import leads.csv"]
    # 3. history is scored, and sends nothing.
    assert "3 as history" in outputs["import history.jsonl"]
    # 4. the test mail, through STARTTLS with the login from the environment.
    [test_mail] = inbox.to("you@example.com")
    assert test_mail["Subject"].startswith("[TEST] ")
    assert all(tls and login == "marketing" for _, tls, login in inbox.messages)
    assert "To: sato@example.co.jp" in outputs["preview wp_thanks"]
    assert "recorded: wp_thanks version" in outputs["test-send wp_thanks"]
    # 5. the worker sent lead-1's thank-you mail only, and told the CRM of lead-2.
    [thanks] = inbox.to("sato@example.co.jp")
    assert "ダウンロード" in thanks["Subject"]
    assert "配信停止" in thanks.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert inbox.to("no-optin@example.co.jp") == [] and inbox.to("kimura@example.co.jp") == []
    [(headers, body)] = received
    event = json.loads(body)
    assert event["event"] == "handoff" and event["handoff"]["lead_id"] == "lead-2"
    assert verify_signature(
        env["NURTUREKIT_SINK_SECRET"].encode(),
        headers["X-Nurturekit-Timestamp"],
        body,
        headers["X-Nurturekit-Signature"],
        now=time.time(),
    )
    # 6. what it did, seen from the command line.
    assert "outbox: 1 sent" in outputs["status --db"]
    assert "last worker activity: never" not in outputs["status --db"]
    explained = outputs["explain lead-1"]
    assert "whitepaper follow-up #1: active" in explained
    assert "whitepaper download" in explained
    assert "lead-2" in outputs["handoffs --db"]
    assert "contacted" in outputs["feedback lead-2"]
    # 7. the results out: the three leads, their activities, one HTML page.
    assert "3 leads exported" in outputs["export leads"]
    assert (tmp_path / "leads-out.csv").read_text(encoding="utf-8").count("\n") == 4
    assert "<svg" in (tmp_path / "report.html").read_text(encoding="utf-8")
    assert __version__ and Engine  # the page's Python part is run by test_in_python below


def worker(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    inbox: Inbox,
    received: list[tuple[dict[str, str], bytes]],
) -> None:
    """``nurturekit run`` in its own process until lead-1's mail and lead-2's notice are in,
    then SIGTERM: it must stop cleanly (exit 0) and say nothing alarming."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (inbox.to("sato@example.co.jp") and received):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the worker sent nothing in 60 s"
            time.sleep(0.1)
        time.sleep(1.5)  # a second round: nothing more may go (lead-3 has no opt-in)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "running, sending through the smtp mailer" in err
    assert "stopped" in err and "Traceback" not in err and "WARNING" not in err


def test_in_python_builds_the_same_system(
    tmp_path: Path, smtp: tuple[Inbox, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's Python part, run as written, in a folder where steps 1 and 2 were done."""
    _inbox, port, ca_file = smtp
    text = DOC.read_text(encoding="utf-8")
    [code] = [
        m.group(2)
        for m in FENCE.finditer(text[text.index("## In Python") :])
        if m.group(1) == "python"
    ]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setenv("NURTUREKIT_SMTP_USER", "marketing")
    monkeypatch.setenv("NURTUREKIT_SMTP_PASSWORD", "change-me")
    monkeypatch.setenv("NURTUREKIT_LINK_SECRET", "0123456789abcdef0123456789abcdef")
    from nurturekit.cli import main

    assert main(["init", "mine.toml"]) == 0
    with open("mine.toml", "a", encoding="utf-8") as program:
        program.write(f'\n[mailer]\ntype = "smtp"\nhost = "{LOCALHOST}"\nport = {port}\n')
    namespace: dict[str, Any] = {}
    exec(compile(code, "getting-started.md", "exec"), namespace)
    assert namespace["report"].sent == 0  # nothing recorded yet, nothing due
    assert isinstance(namespace["engine"], Engine)


def test_the_readme_example_runs_and_explains_the_score(
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (DOC.parent.parent / "README.md").read_text(encoding="utf-8")
    [code] = [m.group(2) for m in FENCE.finditer(readme) if m.group(1) == "python"]
    exec(compile(code, "README.md", "exec"), {})
    explained = capsys.readouterr().out
    assert "pricing page visit" in explained and "+30" in explained


def test_bring_your_data_as_the_page_says(tmp_path: Path) -> None:
    """The page's "Bring your data": its files saved and its commands run as written, each in
    its own process; then what they stored, and the copy made by exporting back out."""
    from nurturekit import export
    from nurturekit.cli import _RESUME
    from nurturekit.importer import (
        BATCH_SIZE,
        HISTORY_BATCH_SIZE,
        LEADS_BATCH_SIZE,
        ImportInterrupted,
        ImportSummary,
    )
    from nurturekit.storage import open_storage

    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTUREKIT_")}
    outputs: dict[str, str] = {}
    shown: list[str] = []
    for step in walkthrough("## Bring your data").steps:
        if step[0] == "save":
            (tmp_path / step[1]).write_text(step[2], encoding="utf-8")
        elif step[0] == "output":
            shown.append(step[1])
        else:
            argv = shlex.split(step[1])
            assert argv[0] == "nurturekit"
            done = subprocess.run(
                [sys.executable, "-m", "nurturekit", *argv[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (step[1], done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
            outputs[" ".join(argv[1:3])] = done.stdout + done.stderr

    # Leads: the CSV's fields, its dates, its contactability; the JSON line's types.
    assert "leads: 2 read, 2 imported, 0 skipped" in outputs["import crm-leads.csv"]
    assert "leads: 1 read, 1 imported" in outputs["import crm-more-leads.jsonl"]
    crm = open_storage(f"sqlite:///{tmp_path / 'crm.db'}")
    copy = open_storage(f"sqlite:///{tmp_path / 'copy.db'}")
    try:
        ito, kato, mori = (crm.get_lead(i) for i in ("crm-101", "crm-102", "crm-103"))
        assert ito is not None and kato is not None and mori is not None
        assert (ito.owner, ito.attributes["employees"]) == ("佐藤", 800)
        assert ito.created_at == datetime(2025, 6, 1, 1, tzinfo=timezone.utc)
        assert ito.consent is not None and ito.consent.method == "web form"
        assert kato.created_at == datetime(2025, 9, 15, tzinfo=timezone.utc)  # midnight UTC
        assert kato.contactability.status.value == "unsubscribed"
        assert mori.attributes["vip"] is True and mori.attributes["employees"] == 2400
        assert mori.attributes["tags"] == ("展示会", "DX")
        # History: every row as history (--backfill), the keys as given.
        assert "3 read, 3 imported (3 as history)" in outputs["import crm-history.jsonl"]
        assert [a.key for a in crm.activities("crm-101")] == ["crm-evt-9001", "crm-evt-9002"]
        # Exporting back out, into copy.db: the same leads and activities.
        assert "3 leads exported" in outputs["export leads"]
        assert list(copy.leads()) == list(crm.leads())
        for lead in crm.leads():
            assert list(copy.activities(lead.id)) == list(crm.activities(lead.id))
        assert list(export.activities(copy)) == list(export.activities(crm))
    finally:
        crm.close()
        copy.close()

    # What an interrupted import prints, and its second run (both run for real by
    # tests/test_import_resume.py), as the page shows them.
    stopped = ImportSummary("activities", 40_000, 40_000, 0, (), history=40_000)
    rerun = ImportSummary("activities", 100_000, 60_000, 40_000, (), history=60_000)
    assert shown == [
        f"{ImportInterrupted(stopped, 'crm-history.jsonl', 0, 40_000)}\n{_RESUME}\n",
        f"{rerun}\n",
    ]
    assert (LEADS_BATCH_SIZE, BATCH_SIZE, HISTORY_BATCH_SIZE) == (5000, 500, 20_000)
