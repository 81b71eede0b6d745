"""Provider webhooks served by ``nurturekit.web`` over real HTTP (wsgiref on 127.0.0.1):
each provider's documented payload, signed with a test key, records the expected activities
and updates the send; a bad signature records nothing; a repost is recorded once."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import pytest
from test_provider_events import (
    MG_KEY,
    NOW,
    PM,
    PM_AUTH,
    PM_BOUNCE,
    PM_OPEN,
    SES_BOUNCE,
    SG_PUBLIC,
    TOPIC,
    Fetcher,
    decode_tag,
    mailgun_body,
    mg_event,
    sendgrid_request,
    sg_event,
    sns_notification,
    sns_sign,
)
from test_smtp import free_port
from test_web import _Quiet, fetch

from nurturekit import ManualClock
from nurturekit.activity import BOUNCED, COMPLAINED, EMAIL_CLICK, EMAIL_DELIVERED, EMAIL_OPEN
from nurturekit.engine import Engine
from nurturekit.lead import ContactStatus
from nurturekit.mail import OutboxMailer
from nurturekit.messages import SendStatus
from nurturekit.program import Program
from nurturekit.providers import (
    MailgunEvents,
    ProviderEvent,
    Recorded,
    SendGridEvents,
    SesEvents,
    record_events,
)
from nurturekit.scoring import ScoringModel
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.testing.factories import SENDER, make_lead, make_mail
from nurturekit.tokens import Links, TokenSigner
from nurturekit.web import make_wsgi_app

KEY = "enr-1:welcome:0"
#: The subscription URLs the web app was asked to confirm.
SUBSCRIBED: list[str] = []


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Engine, SQLiteStorage]]:
    storage = SQLiteStorage(tmp_path / "nk.db")
    links = Links(f"http://127.0.0.1:{free_port()}/nk", TokenSigner(b"h" * 32), development=True)
    engine = Engine(
        Program(scoring=ScoringModel(), sender=SENDER),
        storage,
        OutboxMailer(),
        links=links,
        clock=ManualClock(NOW),
    )
    engine.upsert_lead(make_lead("l1", email="ann@example.co.jp"))
    storage.add_to_outbox(make_mail(KEY, lead_id="l1"))
    storage.mark_sent(KEY, SendStatus.SENT, "", NOW)
    yield engine, storage
    storage.close()


def _providers() -> dict[str, Any]:
    return {
        "sendgrid": SendGridEvents(SG_PUBLIC),
        "mailgun": MailgunEvents(MG_KEY),
        "postmark": PM,
        "ses": SesEvents(Fetcher(), [TOPIC], decode_key=decode_tag),
    }


@pytest.fixture
def base(world: tuple[Engine, SQLiteStorage]) -> Iterator[str]:
    """Serve the world's endpoints and the four providers' webhooks; give the base URL."""
    engine, _ = world
    port = int(engine.links.base_url.split(":")[2].split("/")[0])
    app = make_wsgi_app(engine, providers=_providers(), confirm_subscription=SUBSCRIBED.append)
    server = make_server("127.0.0.1", port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield engine.links.base_url
    finally:
        server.shutdown()
        server.server_close()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def kinds(storage: SQLiteStorage) -> list[str]:
    return [a.kind for a in storage.activities("l1")]


def test_each_provider_s_signed_events_are_recorded_once(
    world: tuple[Engine, SQLiteStorage], base: str
) -> None:
    _, storage = world
    # SendGrid: delivered, open (machine), click.
    batch = [
        sg_event("delivered"),
        sg_event("open", sg_machine_open=True),
        sg_event("click", url="https://example.co.jp/case"),
    ]
    body = json.dumps(batch).encode()
    status, answer = post(f"{base}/hooks/sendgrid", body, sendgrid_request(body))
    assert status == 200 and json.loads(answer)["recorded"] == 3
    # The same post again: nothing more.
    status, answer = post(f"{base}/hooks/sendgrid", body, sendgrid_request(body))
    assert status == 200 and json.loads(answer) == {
        "recorded": 0,
        "repeated": 3,
        "unmatched": 0,
        "ignored": 0,
    }
    assert sorted(kinds(storage)) == sorted([EMAIL_DELIVERED, EMAIL_OPEN, EMAIL_CLICK])
    (opened,) = [a for a in storage.activities("l1") if a.kind == EMAIL_OPEN]
    assert (opened.properties["ref"], opened.properties.get("machine")) == (KEY, 1)
    # Mailgun: a complaint.
    body = mailgun_body(mg_event("complained", **{"user-variables": {"nk_send_key": KEY}}))
    status, _ = post(f"{base}/hooks/mailgun", body, {"Content-Type": "application/json"})
    assert status == 200
    assert kinds(storage).count(COMPLAINED) == 1
    complained = storage.get_send(KEY)
    assert complained is not None and complained.status is SendStatus.SENT
    assert complained.detail.startswith("complained of after it was handed over (mailgun)")
    assert complained.attempts == 1
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.DO_NOT_CONTACT
    # Postmark: an open, then a hard bounce after the send was SENT.
    status, _ = post(f"{base}/hooks/postmark", json.dumps(PM_OPEN).encode(), PM_AUTH)
    assert status == 200
    status, _ = post(f"{base}/hooks/postmark", json.dumps(PM_BOUNCE).encode(), PM_AUTH)
    assert status == 200
    assert kinds(storage).count(EMAIL_OPEN) == 2 and kinds(storage).count(BOUNCED) == 1
    entry = storage.get_send(KEY)
    assert entry is not None and entry.status is SendStatus.BOUNCED
    assert "bounced after it was handed over (postmark)" in entry.detail


def test_ses_events_and_the_subscription_confirmation(
    world: tuple[Engine, SQLiteStorage], base: str
) -> None:
    _, storage = world
    headers, body = sns_notification(SES_BOUNCE)
    status, _ = post(f"{base}/hooks/ses", body, headers)
    assert status == 200 and kinds(storage) == [BOUNCED]
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.BOUNCED
    url = "https://sns.ap-northeast-1.amazonaws.com/?Action=ConfirmSubscription&Token=t"
    message = sns_sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "t",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe.",
            "SubscribeURL": url,
            "Timestamp": "2026-04-01T08:59:00.000Z",
        }
    )
    status, _ = post(
        f"{base}/hooks/ses",
        json.dumps(message).encode(),
        {"x-amz-sns-message-type": "SubscriptionConfirmation"},
    )
    assert status == 200 and SUBSCRIBED[-1] == url


def test_refused_webhooks_record_nothing(world: tuple[Engine, SQLiteStorage], base: str) -> None:
    _, storage = world
    body = json.dumps([sg_event("delivered")]).encode()
    forged = sendgrid_request(b"[]")  # signed for another body
    assert post(f"{base}/hooks/sendgrid", body, forged)[0] == 401
    stale = sendgrid_request(body, at=int(NOW.timestamp()) - 3600)
    assert post(f"{base}/hooks/sendgrid", body, stale)[0] == 403
    wrong = mailgun_body(mg_event("delivered"), key="key-of-someone-else")
    assert post(f"{base}/hooks/mailgun", wrong, {})[0] == 401
    assert post(f"{base}/hooks/postmark", json.dumps(PM_OPEN).encode(), {})[0] == 401
    assert post(f"{base}/hooks/postmark", b"{not json", PM_AUTH)[0] == 400
    assert post(f"{base}/hooks/unknown", b"{}", {})[0] == 404
    status, _, _ = fetch(f"{base}/hooks/sendgrid")
    assert status == 405
    assert storage.activities("l1") == []
    entry = storage.get_send(KEY)
    assert entry is not None and entry.status is SendStatus.SENT


def test_what_each_kind_of_event_does(world: tuple[Engine, SQLiteStorage]) -> None:
    engine, storage = world

    def event(kind: str, n: int, **fields: Any) -> ProviderEvent:
        fields.setdefault("send_key", KEY)
        return ProviderEvent(
            provider="test", event_id=f"e{n}", kind=kind, recipient="ann@example.co.jp",
            at=NOW, **fields,
        )  # fmt: skip

    done = record_events(
        engine,
        [
            event("delivered", 1, send_key=None),  # no key: another system's mail
            event("delivered", 2, send_key="not-ours"),
            event("bounce", 3, hard=False, detail="452 mailbox full"),  # soft: the provider retries
            event("deferred", 4),
            event("dropped", 5, detail="Bounced Address"),
            event("unsubscribe", 6),
        ],
    )
    assert done == Recorded(recorded=2, repeated=0, unmatched=2, ignored=2)
    entry = storage.get_send(KEY)
    assert entry is not None and entry.status is SendStatus.REJECTED
    assert entry.detail == "dropped after it was handed over (test): Bounced Address"
    assert kinds(storage) == ["unsubscribed"]
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.UNSUBSCRIBED
    # A drop of a send not recorded as sent changes nothing.
    assert record_events(engine, [event("dropped", 7)]) == Recorded(ignored=1)


def _signed(provider: str) -> tuple[bytes, dict[str, str]]:
    """A request of ``provider`` with one event about the send ``KEY``, signed as documented."""
    if provider == "sendgrid":
        body = json.dumps([sg_event("delivered")]).encode()
        return body, sendgrid_request(body)
    if provider == "mailgun":
        event = mg_event("delivered", **{"user-variables": {"nk_send_key": KEY}})
        return mailgun_body(event), {"Content-Type": "application/json"}
    if provider == "postmark":
        return json.dumps(PM_OPEN).encode(), PM_AUTH
    headers, body = sns_notification(SES_BOUNCE)
    return body, headers


def _spoiled(provider: str, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The same request with its signature (or credentials) no longer matching."""
    if provider == "sendgrid":
        return body.replace(b"delivered", b"delivereD"), headers
    if provider == "mailgun":  # Mailgun signs the timestamp and the token, not the event
        return body.replace(b'"token":"e0b5', b'"token":"f0b5'), headers
    if provider == "postmark":
        return body, {"Authorization": "Basic " + "bms6d3Jvbmc="}
    return body.replace(b"Permanent", b"Transient"), headers


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun", "postmark", "ses"])
def test_for_each_provider_a_repost_counts_once_and_a_bad_signature_nothing(
    world: tuple[Engine, SQLiteStorage], base: str, provider: str
) -> None:
    _, storage = world
    body, headers = _signed(provider)
    bad_body, bad_headers = _spoiled(provider, body, headers)
    status, _ = post(f"{base}/hooks/{provider}", bad_body, bad_headers)
    assert status in (401, 403)
    assert storage.activities("l1") == []
    first = post(f"{base}/hooks/{provider}", body, headers)
    again = post(f"{base}/hooks/{provider}", body, headers)
    assert (first[0], again[0]) == (200, 200)
    assert json.loads(first[1])["recorded"] == 1
    assert json.loads(again[1]) == {"recorded": 0, "repeated": 1, "unmatched": 0, "ignored": 0}
    assert len(storage.activities("l1")) == 1
