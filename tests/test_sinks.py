"""The hand-off sinks: the in-memory list, the Python callback, and the webhook against a real HTTP
server on 127.0.0.1 (no mocks of urllib)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nurturekit.errors import InvalidInput, NurtureError
from nurturekit.handoff import Handoff, HandoffEvent, HandoffStatus
from nurturekit.ports import HandoffSink
from nurturekit.sinks import CallbackSink, ListSink, SinkError, WebhookSink, verify_signature

LOCALHOST = "127.0.0.1"
SECRET = b"0123456789abcdef-test-secret"


def qualified_handoff() -> Handoff:
    """Seed 001's lead: score 115, viewed pricing, 300 employees; handed to Sato for 24 h."""
    return Handoff(
        id="h1",
        lead_id="l1",
        at=datetime(2026, 4, 1, 9, tzinfo=timezone.utc),
        definition="score+pricing+size",
        explanation="✓ all of: score ≥ 100, viewed pricing, ≥ 100 employees",
        score=115,
        score_explanation="score 115 = whitepaper 2×30 + pricing 40 + title 15",
        recent=(
            "2026-04-01T08:00:00+00:00 page_view page=pricing",
            "2026-03-30T10:00:00+00:00 form_submit name=山田太郎",
        ),
        owner="佐藤 花子",
        deadline=datetime(2026, 4, 2, 9, tzinfo=timezone.utc),
    )


def handoff_event(kind: str = "handoff") -> HandoffEvent:
    return HandoffEvent(
        kind=kind,
        handoff=qualified_handoff(),
        at=datetime(2026, 4, 1, 9, 0, 5, tzinfo=timezone.utc),
    )


# --- the receiving server -------------------------------------------------------------------------


@dataclass
class Received:
    """One request the server got: header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    #: Seconds to wait before answering (longer than the sink's timeout: a timeout).
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers from a script (then 200) and records all."""

    url: str
    script: list[Answer]
    requests: list[Received] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


StartReceiver = Callable[..., Receiver]


@pytest.fixture
def start_receiver() -> Iterator[StartReceiver]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread, Receiver]] = []

    def start(*script: Answer | int) -> Receiver:
        answers = [a if isinstance(a, Answer) else Answer(status=a) for a in script]
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    receiver.requests.append(
                        Received(
                            method=self.command,
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                    answer = receiver.script.pop(0) if receiver.script else Answer()
                if answer.delay:
                    receiver.stopping.wait(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sink gave up waiting and closed the connection

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((LOCALHOST, 0), Handler)
        port = server.server_address[1]
        receiver = Receiver(url=f"http://{LOCALHOST}:{port}/hooks/nurturekit", script=answers)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread, receiver))
        return receiver

    yield start
    for server, thread, receiver in servers:
        receiver.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Sleeps:
    """A sleep that returns at once and remembers how long it was asked to wait."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def webhook(receiver: Receiver, sleeps: Sleeps | None = None, **options: Any) -> WebhookSink:
    return WebhookSink(receiver.url, SECRET, sleep=sleeps or Sleeps(), **options)


# --- the webhook ----------------------------------------------------------------------------------


def test_a_hand_off_arrives_as_signed_utf8_json_with_every_field(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(200)
    before = int(time.time())
    webhook(receiver).notify(handoff_event())
    after = int(time.time())

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/nurturekit"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-nurturekit-event-id"] == "h1:handoff"
    timestamp = request.headers["x-nurturekit-timestamp"]
    assert before <= int(timestamp) <= after
    assert verify_signature(
        SECRET, timestamp, request.body, request.headers["x-nurturekit-signature"], now=time.time()
    )
    assert "山田太郎".encode() in request.body  # not \u escapes
    assert json.loads(request.body.decode("utf-8")) == {
        "event": "handoff",
        "at": "2026-04-01T09:00:05+00:00",
        "handoff": {
            "id": "h1",
            "lead_id": "l1",
            "at": "2026-04-01T09:00:00+00:00",
            "definition": "score+pricing+size",
            "explanation": "✓ all of: score ≥ 100, viewed pricing, ≥ 100 employees",
            "score": 115,
            "score_explanation": "score 115 = whitepaper 2×30 + pricing 40 + title 15",
            "recent": [
                "2026-04-01T08:00:00+00:00 page_view page=pricing",
                "2026-03-30T10:00:00+00:00 form_submit name=山田太郎",
            ],
            "owner": "佐藤 花子",
            "status": "open",
            "deadline": "2026-04-02T09:00:00+00:00",
            "contacted_at": None,
            "closed_at": None,
            "outcome_note": "",
            "escalated_at": None,
            "notified_at": None,
            "escalation_notified_at": None,
            "notify_attempts": 0,
        },
    }


def test_a_breach_notice_carries_its_kind_and_the_status_value(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver()
    breached = HandoffEvent(
        kind="sla_breach",
        handoff=qualified_handoff(),
        at=datetime(2026, 4, 2, 9, tzinfo=timezone.utc),
    )
    sink = WebhookSink(receiver.url, SECRET, headers={"Authorization": "Bearer crm-token"})
    sink.notify(breached)

    [request] = receiver.requests
    assert request.headers["x-nurturekit-event-id"] == "h1:sla_breach"
    assert request.headers["authorization"] == "Bearer crm-token"
    payload = json.loads(request.body)
    assert payload["event"] == "sla_breach"
    assert payload["handoff"]["status"] == HandoffStatus.OPEN.value


def test_a_500_then_a_200_succeeds_on_the_second_request(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(500, 200)
    sleeps = Sleeps()
    webhook(receiver, sleeps, backoff=0.5).notify(handoff_event())

    assert len(receiver.requests) == 2
    assert sleeps.waits == [0.5]
    # The same notice both times: the receiver can drop the second by its event id.
    assert {r.headers["x-nurturekit-event-id"] for r in receiver.requests} == {"h1:handoff"}
    assert receiver.requests[0].body == receiver.requests[1].body


def test_three_500s_give_up_after_three_requests_with_doubling_waits(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(500, 500, 500)
    sleeps = Sleeps()
    with pytest.raises(SinkError) as raised:
        webhook(receiver, sleeps, attempts=3, backoff=0.5).notify(handoff_event())

    assert len(receiver.requests) == 3
    assert sleeps.waits == [0.5, 1.0]
    message = str(raised.value)
    assert receiver.url in message
    assert "HTTP 500" in message
    assert "3 tries" in message
    assert isinstance(raised.value, NurtureError)


def test_a_429_is_retried(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(429, 204)
    webhook(receiver).notify(handoff_event())
    assert len(receiver.requests) == 2


def test_a_400_fails_at_once_without_a_retry(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(400, 200)
    sleeps = Sleeps()
    with pytest.raises(SinkError, match="HTTP 400") as raised:
        webhook(receiver, sleeps).notify(handoff_event())

    assert len(receiver.requests) == 1
    assert sleeps.waits == []
    assert "not retried" in str(raised.value)


def test_a_redirect_is_not_followed(start_receiver: StartReceiver) -> None:
    elsewhere = start_receiver()
    receiver = start_receiver(Answer(status=307, headers={"Location": elsewhere.url}))
    with pytest.raises(SinkError, match="HTTP 307"):
        webhook(receiver).notify(handoff_event())

    assert len(receiver.requests) == 1
    assert elsewhere.requests == []


def test_a_timeout_is_retried_then_fails(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(Answer(delay=2.0), Answer(delay=2.0))
    sleeps = Sleeps()
    with pytest.raises(SinkError, match="timed out"):
        webhook(receiver, sleeps, timeout=0.3, attempts=2).notify(handoff_event())

    assert len(receiver.requests) == 2
    assert sleeps.waits == [0.5]


def test_a_timeout_then_a_200_succeeds(start_receiver: StartReceiver) -> None:
    receiver = start_receiver(Answer(delay=2.0), 200)
    webhook(receiver, timeout=0.3).notify(handoff_event())
    assert len(receiver.requests) == 2


def test_a_refused_connection_is_retried_then_fails() -> None:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    sleeps = Sleeps()
    sink = WebhookSink(f"http://{LOCALHOST}:{port}/hook", SECRET, sleep=sleeps, attempts=2)
    with pytest.raises(SinkError, match="2 tries"):
        sink.notify(handoff_event())
    assert sleeps.waits == [0.5]


def test_the_error_leaves_out_the_query_that_may_hold_a_token(
    start_receiver: StartReceiver,
) -> None:
    receiver = start_receiver(403)
    sink = WebhookSink(f"{receiver.url}?token=s3cr3t-t0ken", SECRET, sleep=Sleeps())
    with pytest.raises(SinkError) as raised:
        sink.notify(handoff_event())

    assert receiver.requests[0].path == "/hooks/nurturekit?token=s3cr3t-t0ken"
    assert receiver.url in str(raised.value)
    assert "s3cr3t" not in str(raised.value)
    assert "s3cr3t" not in repr(sink)
    assert SECRET.decode() not in repr(sink)


@pytest.mark.parametrize(
    ("url", "secret", "options", "where"),
    [
        ("ftp://crm.example.com/hook", SECRET, {}, "WebhookSink.url"),
        ("crm.example.com/hook", SECRET, {}, "WebhookSink.url"),
        ("https://user:pw@crm.example.com/hook", SECRET, {}, "WebhookSink.url"),
        ("https://crm.example.com:99999/hook", SECRET, {}, "WebhookSink.url"),
        ("https://crm.example.com/hook", b"too-short", {}, "WebhookSink.secret"),
        ("https://crm.example.com/hook", SECRET.decode(), {}, "WebhookSink.secret"),
        ("https://crm.example.com/hook", SECRET, {"attempts": 0}, "WebhookSink.attempts"),
        ("https://crm.example.com/hook", SECRET, {"timeout": 0}, "WebhookSink.timeout"),
        ("https://crm.example.com/hook", SECRET, {"backoff": -1}, "WebhookSink.backoff"),
        (
            "https://crm.example.com/hook",
            SECRET,
            {"headers": {"X-Nurturekit-Signature": "x"}},
            "WebhookSink.headers['X-Nurturekit-Signature']",
        ),
        (
            "https://crm.example.com/hook",
            SECRET,
            {"headers": {"X-Trace": "a\r\nInjected: 1"}},
            "WebhookSink.headers['X-Trace']",
        ),
    ],
)
def test_a_bad_setting_is_refused_naming_the_argument(
    url: Any, secret: Any, options: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        WebhookSink(url, secret, **options)
    assert raised.value.where == where
    assert "pw" not in str(raised.value)


def test_an_https_url_is_accepted() -> None:
    sink: HandoffSink = WebhookSink("https://crm.example.com/hooks/nk", bytearray(SECRET))
    assert isinstance(sink, WebhookSink)
    assert sink.secret == SECRET


# --- verify_signature -------------------------------------------------------------------------


def signed_request(start_receiver: StartReceiver) -> Received:
    receiver = start_receiver()
    webhook(receiver).notify(handoff_event())
    return receiver.requests[0]


def test_a_tampered_body_fails_verification(start_receiver: StartReceiver) -> None:
    request = signed_request(start_receiver)
    timestamp = request.headers["x-nurturekit-timestamp"]
    signature = request.headers["x-nurturekit-signature"]
    tampered = request.body.replace(b'"score":115', b'"score":999')
    assert tampered != request.body

    assert verify_signature(SECRET, timestamp, request.body, signature, now=time.time())
    assert not verify_signature(SECRET, timestamp, tampered, signature, now=time.time())
    assert not verify_signature(
        b"another-secret-16b", timestamp, request.body, signature, now=time.time()
    )
    # The timestamp is signed too: moving it breaks the signature.
    moved = str(int(timestamp) + 1)
    assert not verify_signature(SECRET, moved, request.body, signature, now=time.time())


def test_a_stale_or_future_timestamp_fails_verification(start_receiver: StartReceiver) -> None:
    request = signed_request(start_receiver)
    timestamp = request.headers["x-nurturekit-timestamp"]
    signature = request.headers["x-nurturekit-signature"]
    sent = int(timestamp)

    assert verify_signature(SECRET, timestamp, request.body, signature, now=sent + 300)
    assert not verify_signature(SECRET, timestamp, request.body, signature, now=sent + 301)
    assert not verify_signature(SECRET, timestamp, request.body, signature, now=sent - 301)
    assert not verify_signature(
        SECRET, timestamp, request.body, signature, now=sent + 61, tolerance=60
    )
    assert verify_signature(SECRET, sent, request.body, signature, now=sent)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        ("", "sha256=00"),
        ("-5", "sha256=00"),
        ("12ab", "sha256=00"),
        ("1775034000", ""),
        ("1775034000", "sha256=ゼロ"),
    ],
)
def test_a_malformed_header_fails_verification_without_raising(
    timestamp: str, signature: str
) -> None:
    assert not verify_signature(SECRET, timestamp, b"{}", signature, now=1775034000)


def test_verify_signature_wants_the_raw_body_as_bytes() -> None:
    with pytest.raises(InvalidInput, match=r"verify_signature\.body"):
        verify_signature(SECRET, "1", "{}", "sha256=00", now=1)  # type: ignore[arg-type]


# --- the list and the callback --------------------------------------------------------------------


def test_the_list_sink_keeps_every_notice_in_order_duplicates_too() -> None:
    sink = ListSink()
    port: HandoffSink = sink
    first, breach = handoff_event(), handoff_event("sla_breach")
    port.notify(first)
    port.notify(breach)
    port.notify(first)

    assert sink.events == [first, breach, first]
    assert sink.failures == 0


def test_the_list_sink_plays_a_sales_system_that_is_down_twice() -> None:
    sink = ListSink(fail_times=2)
    event = handoff_event()
    for failure in (1, 2):
        with pytest.raises(SinkError, match=f"failure {failure} of 2"):
            sink.notify(event)
        assert sink.events == []
    sink.notify(event)

    assert sink.events == [event]
    assert sink.failures == 2


def test_the_list_sink_refuses_a_negative_fail_count() -> None:
    with pytest.raises(InvalidInput, match=r"ListSink\.fail_times"):
        ListSink(fail_times=-1)


def test_the_callback_sink_calls_the_function_with_the_event() -> None:
    told: list[HandoffEvent] = []
    sink: HandoffSink = CallbackSink(told.append)
    event = handoff_event()
    sink.notify(event)

    assert told == [event]


def test_a_failing_callback_becomes_a_sink_error_chained_to_its_cause() -> None:
    cause = ConnectionError("chat service unreachable")

    def post_to_chat(event: HandoffEvent) -> None:
        raise cause

    with pytest.raises(SinkError, match=r"post_to_chat failed .* 'h1'.*unreachable") as raised:
        CallbackSink(post_to_chat).notify(handoff_event())
    assert raised.value.__cause__ is cause


def test_a_sink_error_from_the_callback_goes_on_as_it_is() -> None:
    error = SinkError("CRM said no")

    def tell_crm(event: HandoffEvent) -> None:
        raise error

    with pytest.raises(SinkError) as raised:
        CallbackSink(tell_crm).notify(handoff_event())
    assert raised.value is error


def test_the_callback_sink_refuses_something_it_cannot_call() -> None:
    with pytest.raises(InvalidInput, match=r"CallbackSink\.function"):
        CallbackSink("post_to_chat")  # type: ignore[arg-type]
