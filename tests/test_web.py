"""``nurturekit.web`` over real servers on 127.0.0.1: a mail goes by SMTP to aiosmtpd, its links
are followed over HTTP to the WSGI app under ``wsgiref`` and the ASGI app under uvicorn, and
what the endpoints record is what the reports count. Hostile requests are refused."""

from __future__ import annotations

import email
import email.policy
import http.client
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn
from aiosmtpd.controller import Controller
from engine_fixtures import OPTED_IN
from test_smtp import LOCALHOST, Recorder, free_port

from nurturekit import Lead, ManualClock
from nurturekit.activity import EMAIL_CLICK, EMAIL_OPEN, Activity
from nurturekit.analytics import scenario_kpis
from nurturekit.conditions import activity
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput
from nurturekit.lead import ContactStatus
from nurturekit.mail import SmtpMailer
from nurturekit.messages import Sender
from nurturekit.program import Program
from nurturekit.scenario import OnActivity, Scenario, SendMail, Wait
from nurturekit.scoring import ScoringModel
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.templates import Template
from nurturekit.tokens import Links, TokenSigner
from nurturekit.web import MAX_BODY, Endpoints, make_asgi_app, make_wsgi_app

START = datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc)
SENDER = Sender(
    name="株式会社セルズアップ",
    address="news@sellsup.example.co.jp",
    postal_address="東京都渋谷区1-2-3",
    unsubscribe_mailto="unsubscribe@sellsup.example.co.jp",
)
HELLO = Template(
    name="hello",
    subject="{{ name }}様、導入事例のご案内",
    text="{{ name }}様\n事例: https://example.co.jp/case?id=1\nセミナー: https://example.co.jp/seminar\n",
    html=(
        "<html><body><p>{{ name }}様</p>"
        '<p><a href="https://example.co.jp/case?id=1">事例</a></p>'
        '<p><a href="https://example.co.jp/seminar">セミナー</a></p></body></html>'
    ),
)
SECOND = Template(name="second", subject="続報", text="続報です\n")
DRIP = Scenario(
    name="drip",
    trigger=OnActivity(when=activity("signup")),
    steps=[
        SendMail(id="hello", template="hello", next="wait"),
        Wait(id="wait", duration=timedelta(days=3), next="second"),
        SendMail(id="second", template="second"),
    ],
)
SIGNER = TokenSigner(b"w" * 32)

Serve = Callable[[Engine], str]


def _program() -> Program:
    return Program(
        scoring=ScoringModel(), sender=SENDER, scenarios=[DRIP], templates=[HELLO, SECOND]
    )


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=["wsgi", "asgi"])
def serve(request: pytest.FixtureRequest) -> Iterator[Serve]:
    """Serve an engine's endpoints on 127.0.0.1 (wsgiref or uvicorn); give the base URL."""
    stops: list[Callable[[], None]] = []

    def start(engine: Engine) -> str:
        port = int(engine.links.base_url.split(":")[2].split("/")[0])
        if request.param == "wsgi":
            server: WSGIServer = make_server(
                LOCALHOST, port, make_wsgi_app(engine), handler_class=_Quiet
            )
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            stops.append(lambda: (server.shutdown(), server.server_close()))
        else:
            config = uvicorn.Config(
                make_asgi_app(engine), host=LOCALHOST, port=port, log_level="warning"
            )
            userver = uvicorn.Server(config)
            thread = threading.Thread(target=userver.run, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not userver.started and time.monotonic() < deadline:
                time.sleep(0.02)
            assert userver.started

            def stop() -> None:
                userver.should_exit = True
                thread.join(10)

            stops.append(stop)
        return engine.links.base_url

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    controller = Controller(handler, hostname=LOCALHOST, port=free_port())
    controller.start()
    yield handler, int(controller.port)
    controller.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(
    url: str, *, data: bytes | None = None, method: str | None = None, agent: str = "Mail/1.0"
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: (status, headers, body)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, data=data, method=method, headers={"User-Agent": agent})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_too_much(url: str, size: int) -> int:
    """POST a body of ``size`` bytes; the status, though the server stops reading early."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or LOCALHOST, parts.port, timeout=10)
    try:
        conn.putrequest("POST", f"{parts.path}?{parts.query}")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        try:
            for _ in range(0, size, 65536):
                conn.send(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: what a limit does
        return conn.getresponse().status
    finally:
        conn.close()


def _engine(tmp_path: Path, smtp_port: int) -> tuple[Engine, SQLiteStorage, ManualClock]:
    storage = SQLiteStorage(tmp_path / "nk.db")
    clock = ManualClock(START)
    links = Links(f"http://127.0.0.1:{free_port()}/nk", SIGNER, development=True)
    mailer = SmtpMailer(LOCALHOST, smtp_port, security="none")
    engine = Engine(_program(), storage, mailer, links=links, clock=clock)
    return engine, storage, clock


def _received(handler: Recorder, index: int = 0) -> EmailMessage:
    content = handler.deliveries[index].envelope.original_content
    assert content is not None
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


def test_a_mail_s_links_pixel_and_one_click_unsubscribe_work_end_to_end(
    tmp_path: Path, smtp: tuple[Recorder, int], serve: Serve
) -> None:
    handler, smtp_port = smtp
    engine, storage, clock = _engine(tmp_path, smtp_port)
    serve(engine)
    engine.upsert_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中", consent=OPTED_IN))
    engine.record(Activity(lead_id="l1", kind="signup", at=START))
    assert engine.run_due().sent == 1
    message = _received(handler)
    (sent,) = list(storage.outbox())
    key = sent.mail.key

    # The clicks: both links of the HTML lead, over HTTP, to their own targets.
    page = _body(message, "html")
    clicks = re.findall(r'href="(http://127\.0\.0\.1:\d+/nk/click\?t=[^"]+)"', page)
    assert len(clicks) == 2
    targets = []
    for click in clicks:
        status, headers, _ = fetch(click)
        assert status == 302
        targets.append(headers["Location"])
    assert targets == ["https://example.co.jp/case?id=1", "https://example.co.jp/seminar"]
    text_clicks = re.findall(r"http://127\.0\.0\.1:\d+/nk/click\?t=\S+", _body(message, "plain"))
    assert len(text_clicks) == 2
    recorded = [a for a in storage.activities("l1") if a.kind == EMAIL_CLICK]
    assert [(a.properties["ref"], a.properties["url"]) for a in recorded] == [
        (key, "https://example.co.jp/case?id=1"),
        (key, "https://example.co.jp/seminar"),
    ]
    (kpis,) = scenario_kpis(storage)
    assert (kpis.steps[0].sent, kpis.steps[0].clicked, kpis.steps[0].opened) == (1, 1, 1)

    # The open pixel: a GIF, and an email_open with the send's key.
    (pixel,) = re.findall(r'<img src="(http://127\.0\.0\.1:\d+/nk/open\?t=[^"]+)"', page)
    status, headers, body = fetch(pixel)
    assert (status, headers["Content-Type"], body[:6]) == (200, "image/gif", b"GIF89a")
    assert "no-store" in headers["Cache-Control"]
    opens = [a for a in storage.activities("l1") if a.kind == EMAIL_OPEN]
    assert [a.properties for a in opens] == [{"ref": key}]

    # One click on the List-Unsubscribe header's URL (RFC 8058): unsubscribed at once.
    (url,) = re.findall(r"<(http://[^>]+)>", str(message["List-Unsubscribe"]))
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    status, _, body = fetch(url, data=b"List-Unsubscribe=One-Click")
    assert status == 200 and b"Unsubscribed" in body
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.UNSUBSCRIBED

    # ... and the scenario's next mail never goes.
    clock.advance(timedelta(days=4))
    engine.run_due()
    assert len(handler.deliveries) == 1


def test_the_unsubscribe_link_asks_before_it_unsubscribes(
    tmp_path: Path, smtp: tuple[Recorder, int], serve: Serve
) -> None:
    _, smtp_port = smtp
    engine, storage, _ = _engine(tmp_path, smtp_port)
    serve(engine)
    engine.upsert_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中", consent=OPTED_IN))
    url = engine.links.unsubscribe_url("l1", "drip/l1/1/hello/1", now=START)
    status, headers, body = fetch(url)
    assert status == 200 and b'<form method="post"' in body and b"Unsubscribe" in body
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.SUBSCRIBED


def test_opens_and_clicks_of_proxies_and_scanners_are_recorded_as_machine(
    tmp_path: Path, smtp: tuple[Recorder, int], serve: Serve
) -> None:
    engine, storage, _ = _engine(tmp_path, smtp[1])
    serve(engine)
    engine.upsert_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中", consent=OPTED_IN))
    ref = "drip/l1/1/hello/1"
    proxy = (
        "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    )
    assert fetch(engine.links.open_url("l1", ref, now=START), agent=proxy)[0] == 200
    click = engine.links.click_url("l1", ref, "https://example.co.jp/", now=START)
    assert fetch(click, method="HEAD")[0] == 302
    machine = [a.properties.get("machine") for a in storage.activities("l1")]
    assert machine == [1, 1]


def test_hostile_requests_are_refused_and_record_nothing(
    tmp_path: Path, smtp: tuple[Recorder, int], serve: Serve
) -> None:
    engine, storage, clock = _engine(tmp_path, smtp[1])
    base = serve(engine)
    engine.upsert_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中", consent=OPTED_IN))
    ref = "drip/l1/1/hello/1"
    click = engine.links.click_url("l1", ref, "https://example.co.jp/", now=START)
    token = click.split("t=")[1]
    payload, signature = token.split(".")
    forged = "https://evil.example/"
    # A target of one's own with the signature of another: an open redirect refused.
    import base64
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["u"] = forged
    other = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    cases = [
        (f"{base}/click?t={other}.{signature}", 400),
        (f"{base}/click?t=garbage", 400),
        (f"{base}/click", 400),
        (f"{base}/click?url={forged}", 400),
        # A token made for another purpose.
        (f"{base}/click?t={engine.links.open_url('l1', ref, now=START).split('t=')[1]}", 400),
        (f"{base}/open?t={token}", 400),
        (f"{base}/elsewhere", 404),
        (f"{base}/../etc/passwd", 404),
    ]
    for url, expected in cases:
        status, headers, body = fetch(url)
        assert status == expected, url
        assert "Location" not in headers and b"Traceback" not in body
    # Expired: 410.
    old = Links(
        engine.links.base_url, TokenSigner(b"w" * 32, ttl=timedelta(days=1)), development=True
    )
    stale = old.click_url("l1", ref, "https://example.co.jp/", now=START - timedelta(days=2))
    assert fetch(stale)[0] == 410
    # A body past the limit: 413, nothing read or recorded.
    unsubscribe = engine.links.unsubscribe_url("l1", ref, now=START)
    assert post_too_much(unsubscribe, MAX_BODY + 1) == 413
    # A method the endpoint does not take.
    assert fetch(click, method="DELETE")[0] == 405
    assert list(storage.activities("l1")) == []
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.SUBSCRIBED
    del clock


def test_links_take_http_only_on_this_machine_and_only_when_asked() -> None:
    with pytest.raises(InvalidInput, match="development=True"):
        Links("http://127.0.0.1:8000/nk", SIGNER)
    with pytest.raises(InvalidInput, match="https"):
        Links("http://example.co.jp/nk", SIGNER, development=True)
    assert Links("http://localhost:8000/nk", SIGNER, development=True).development
    assert Links("http://[::1]:8000/nk/", SIGNER, development=True).base_url == (
        "http://[::1]:8000/nk"
    )


def test_a_click_still_redirects_when_recording_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine, storage, _ = _engine(tmp_path, free_port())
    engine.upsert_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中", consent=OPTED_IN))

    def broken(activity: Activity) -> None:
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(engine, "record", broken)
    endpoints = Endpoints(engine)
    click = engine.links.click_url("l1", "drip/l1/1/hello/1", "https://example.co.jp/", now=START)
    query = click.split("?", 1)[1]
    answer = endpoints.handle("GET", "/nk/click", query, {}, b"")
    assert (answer.status, dict(answer.headers)["Location"]) == (302, "https://example.co.jp/")
    assert "recording email_click of l1 failed" in caplog.text
    # An unsubscribe that cannot be recorded says so (500), so the reader can try again.
    unsubscribe = engine.links.unsubscribe_url("l1", "drip/l1/1/hello/1", now=START)
    answer = endpoints.handle("POST", "/nk/unsubscribe", unsubscribe.split("?", 1)[1], {}, b"")
    assert answer.status == 500 and b"Traceback" not in answer.body
    storage.close()
