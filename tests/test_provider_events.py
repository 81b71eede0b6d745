"""Mail providers' webhooks: a request is read only once its signature (or, for Postmark, its
credentials) checks out; each provider's documented payload becomes the normalised events; a
bad signature, a replay and a malformed body are refused with the right status."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from nurturekit.errors import InvalidInput, NaiveDatetime, NurtureError
from nurturekit.providers import (
    MailgunEvents,
    PostmarkEvents,
    ProviderEvent,
    SendGridEvents,
    SesEvents,
    WebhookRejected,
)

UTC = timezone.utc
NOW = datetime(2026, 4, 1, 9, 0, 0, tzinfo=UTC)
NOW_UNIX = int(NOW.timestamp())


def rejected(call: Callable[[], object], status: int) -> WebhookRejected:
    with pytest.raises(WebhookRejected) as info:
        call()
    assert info.value.status == status, str(info.value)
    assert isinstance(info.value, NurtureError)
    return info.value


def compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


# --- SendGrid -----------------------------------------------------------------------------------
# Signature: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
# (ECDSA P-256 / SHA-256 over the timestamp header followed by the raw body; key base64 DER).
# Events: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event

SG_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SG_PUBLIC = base64.b64encode(
    SG_PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode("ascii")


def sendgrid_request(
    body: bytes, *, at: int = NOW_UNIX, key: ec.EllipticCurvePrivateKey = SG_PRIVATE
) -> dict[str, str]:
    timestamp = str(at)
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def sg_event(event: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "email": "ann@example.co.jp",
        "timestamp": 1775034000,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "category": "nurture",
        "sg_event_id": f"sg-{event}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "nk_send_key": "enr-1:welcome:0",
    }
    base.update(fields)
    return base


SENDGRID_BATCH = [
    sg_event("processed"),
    sg_event("delivered", response="250 OK"),
    sg_event("open", useragent="Mozilla/5.0", ip="255.255.255.255", sg_machine_open=True),
    sg_event("open", sg_event_id="sg-open-2", sg_machine_open=False),
    sg_event("click", url="https://example.co.jp/case-study", url_offset={"index": 0}),
    sg_event("bounce", type="bounce", status="5.1.1", reason="550 5.1.1 user unknown"),
    sg_event("bounce", sg_event_id="sg-blocked", type="blocked", reason="421 try later"),
    sg_event(
        "bounce",
        sg_event_id="sg-classified",
        bounce_classification="Invalid Address",
        reason="550 no such user",
    ),
    sg_event("dropped", reason="Bounced Address", status="5.0.0"),
    sg_event("deferred", response="400 try again later", attempt="5"),
    sg_event("spamreport"),
    sg_event("unsubscribe"),
    sg_event("group_unsubscribe", asm_group_id=10, sg_event_id="sg-group"),
    sg_event("group_resubscribe", asm_group_id=10),
]


def test_sendgrid_maps_each_documented_event() -> None:
    body = compact(SENDGRID_BATCH)
    events = SendGridEvents(SG_PUBLIC).events(sendgrid_request(body), body, now=NOW)
    summary = [(e.event_id, e.kind, e.hard, e.machine, e.url) for e in events]
    assert summary == [
        ("sg-delivered", "delivered", False, False, None),
        ("sg-open", "open", False, True, None),
        ("sg-open-2", "open", False, False, None),
        ("sg-click", "click", False, False, "https://example.co.jp/case-study"),
        ("sg-bounce", "bounce", True, False, None),
        ("sg-blocked", "bounce", False, False, None),
        ("sg-classified", "bounce", True, False, None),
        ("sg-dropped", "dropped", False, False, None),
        ("sg-deferred", "deferred", False, False, None),
        ("sg-spamreport", "complaint", False, False, None),
        ("sg-unsubscribe", "unsubscribe", False, False, None),
        ("sg-group", "unsubscribe", False, False, None),
    ]
    for event in events:
        assert event.provider == "sendgrid"
        assert event.send_key == "enr-1:welcome:0"
        assert event.recipient == "ann@example.co.jp"
        assert event.at == datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    assert events[4].detail == "bounce: 5.1.1: 550 5.1.1 user unknown"
    assert events[8].detail == "400 try again later"


def test_sendgrid_headers_are_found_whatever_their_case() -> None:
    body = compact([sg_event("delivered")])
    headers = {name.lower(): value for name, value in sendgrid_request(body).items()}
    assert len(SendGridEvents(SG_PUBLIC).events(headers, body, now=NOW)) == 1


def test_sendgrid_bad_signature_is_401_and_gives_no_events() -> None:
    body = compact([sg_event("delivered")])
    verifier = SendGridEvents(SG_PUBLIC)
    headers = sendgrid_request(body)
    tampered = body.replace(b"ann@", b"bob@")
    rejected(lambda: verifier.events(headers, tampered, now=NOW), 401)
    other_key = ec.generate_private_key(ec.SECP256R1())
    rejected(lambda: verifier.events(sendgrid_request(body, key=other_key), body, now=NOW), 401)
    # the timestamp is signed too
    moved = dict(headers, **{"X-Twilio-Email-Event-Webhook-Timestamp": str(NOW_UNIX + 1)})
    rejected(lambda: verifier.events(moved, body, now=NOW), 401)
    garbled = dict(headers, **{"X-Twilio-Email-Event-Webhook-Signature": "%%%"})
    rejected(lambda: verifier.events(garbled, body, now=NOW), 401)
    for missing in headers:
        partial = {name: value for name, value in headers.items() if name != missing}
        error = rejected(functools.partial(verifier.events, partial, body, now=NOW), 401)
        assert missing in str(error)


def test_sendgrid_old_or_future_timestamp_is_403() -> None:
    body = compact([sg_event("delivered")])
    verifier = SendGridEvents(SG_PUBLIC)
    old = sendgrid_request(body, at=NOW_UNIX - 301)
    rejected(lambda: verifier.events(old, body, now=NOW), 403)
    future = sendgrid_request(body, at=NOW_UNIX + 301)
    rejected(lambda: verifier.events(future, body, now=NOW), 403)
    assert SendGridEvents(SG_PUBLIC, tolerance=timedelta(minutes=10)).events(old, body, now=NOW)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[{not json", "sendgrid body"),
        (b'{"event": "delivered"}', "sendgrid body"),
        (compact([1]), "sendgrid body[0]"),
        (compact([sg_event("delivered", email=None)]), "sendgrid body[0].email"),
        (compact([{"event": "open", "timestamp": 1}]), "sendgrid body[0].email"),
        (compact([sg_event("open", timestamp="yesterday")]), "sendgrid body[0].timestamp"),
        (compact([sg_event("open", timestamp=True)]), "sendgrid body[0].timestamp"),
        (compact([sg_event("open", timestamp=10**400)]), "sendgrid body[0].timestamp"),
        (compact([sg_event("open", sg_machine_open=3)]), "sendgrid body[0].sg_machine_open"),
        (compact([sg_event("click")]), "sendgrid body[0].url"),
        (compact([sg_event("bounce", type=["bounce"])]), "sendgrid body[0].type"),
        (compact([sg_event("open", nk_send_key=7)]), "sendgrid body[0].nk_send_key"),
        (b"[NaN]", "sendgrid body"),
    ],
)
def test_sendgrid_malformed_body_is_400_naming_what_is_wrong(body: bytes, where: str) -> None:
    error = rejected(
        lambda: SendGridEvents(SG_PUBLIC).events(sendgrid_request(body), body, now=NOW), 400
    )
    assert error.where == where


def test_sendgrid_event_without_id_gets_a_stable_digest() -> None:
    first = sg_event("delivered")
    del first["sg_event_id"]
    second = dict(first, email="bob@example.co.jp")
    body = compact([first, second])
    verifier = SendGridEvents(SG_PUBLIC)
    ids = [e.event_id for e in verifier.events(sendgrid_request(body), body, now=NOW)]
    reordered = json.dumps([dict(reversed(list(first.items())))]).encode()
    again = verifier.events(sendgrid_request(reordered), reordered, now=NOW)
    assert ids[0].startswith("sha256:") and ids[0] != ids[1]
    assert again[0].event_id == ids[0]


def test_sendgrid_key_is_checked_when_built() -> None:
    with pytest.raises(InvalidInput):
        SendGridEvents("not a key")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidInput, match="elliptic"):
        SendGridEvents(base64.b64encode(rsa_der).decode())
    pem = (
        SG_PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    body = compact([sg_event("delivered")])
    assert SendGridEvents(pem).events(sendgrid_request(body), body, now=NOW)
    with pytest.raises(InvalidInput):
        SendGridEvents(SG_PUBLIC, tolerance=timedelta(0))


def test_without_cryptography_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)
    monkeypatch.setitem(sys.modules, "cryptography.x509", None)
    with pytest.raises(ImportError, match=r"nurturekit\[providers\]"):
        SendGridEvents(SG_PUBLIC)
    with pytest.raises(ImportError, match=r"nurturekit\[providers\]"):
        SesEvents(fetch_certificate=lambda url: b"")


def test_importing_the_providers_does_not_import_cryptography() -> None:
    code = "import sys, nurturekit.providers; print('cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- Mailgun ------------------------------------------------------------------------------------
# Signature: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks
# Payloads: https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
# Bots: https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/open-click-bot-detect

MG_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


def mailgun_body(
    event_data: object,
    *,
    at: int = NOW_UNIX,
    token: str = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
    key: str = MG_KEY,
) -> bytes:
    signature = hmac.new(key.encode(), f"{at}{token}".encode(), hashlib.sha256).hexdigest()
    return compact(
        {
            "signature": {"token": token, "timestamp": str(at), "signature": signature},
            "event-data": event_data,
        }
    )


def mg_event(event: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event": event,
        "id": f"mg-{event}",
        "timestamp": 1775034000.372891,
        "log-level": "info",
        "recipient": "ann@example.co.jp",
        "recipient-domain": "example.co.jp",
        "message": {"headers": {"message-id": "20260401090000.abc@mg.example.co.jp"}},
        "tags": [],
        "user-variables": {"nk_send_key": "enr-1:welcome:0"},
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            mg_event("delivered", **{"delivery-status": {"code": 250, "message": "OK"}}),
            ("delivered", False, False, None, "OK"),
        ),
        (
            mg_event("opened", **{"client-info": {"client-name": "unknown", "bot": "apple"}}),
            ("open", False, True, None, ""),
        ),
        (
            mg_event("opened", **{"client-info": {"client-name": "Thunderbird", "bot": ""}}),
            ("open", False, False, None, ""),
        ),
        (
            mg_event("clicked", url="https://example.co.jp/pricing"),
            ("click", False, False, "https://example.co.jp/pricing", ""),
        ),
        (
            mg_event(
                "failed",
                severity="permanent",
                reason="bounce",
                **{"delivery-status": {"code": 550, "message": "5.1.1 no such user"}},
            ),
            ("bounce", True, False, None, "bounce: 5.1.1 no such user"),
        ),
        (
            mg_event("failed", severity="temporary", reason="generic"),
            ("deferred", False, False, None, "generic"),
        ),
        (
            mg_event("failed", severity="permanent", reason="suppress-bounce"),
            ("dropped", False, False, None, "suppress-bounce"),
        ),
        (mg_event("complained"), ("complaint", False, False, None, "")),
        (mg_event("unsubscribed"), ("unsubscribe", False, False, None, "")),
    ],
)
def test_mailgun_maps_each_documented_event(
    data: dict[str, object], expected: tuple[object, ...]
) -> None:
    body = mailgun_body(data)
    [event] = MailgunEvents(MG_KEY).events({}, body, now=NOW)
    assert (event.kind, event.hard, event.machine, event.url, event.detail) == expected
    assert event.event_id == data["id"]
    assert event.send_key == "enr-1:welcome:0"
    assert event.recipient == "ann@example.co.jp"
    assert event.at == datetime(2026, 4, 1, 9, 0, 0, 372891, tzinfo=UTC)


def test_mailgun_skips_other_events_and_reads_empty_user_variables() -> None:
    verifier = MailgunEvents(MG_KEY)
    assert verifier.events({}, mailgun_body(mg_event("accepted")), now=NOW) == []
    no_variables = mg_event("delivered", **{"user-variables": []})
    [event] = verifier.events({}, mailgun_body(no_variables), now=NOW)
    assert event.send_key is None


def test_mailgun_bad_signature_is_401_and_gives_no_events() -> None:
    verifier = MailgunEvents(MG_KEY)
    forged = mailgun_body(mg_event("delivered"), key="key-someone-else")
    rejected(lambda: verifier.events({}, forged, now=NOW), 401)
    unsigned = compact({"event-data": mg_event("delivered")})
    rejected(lambda: verifier.events({}, unsigned, now=NOW), 401)
    payload = json.loads(mailgun_body(mg_event("delivered")))
    payload["signature"]["token"] = "another-token"
    rejected(lambda: verifier.events({}, compact(payload), now=NOW), 401)
    payload["signature"] = {"timestamp": NOW_UNIX, "token": 5, "signature": "00"}
    rejected(lambda: verifier.events({}, compact(payload), now=NOW), 401)


def test_mailgun_parent_signature_of_a_subaccount_is_accepted() -> None:
    parent_key = "key-parent"
    payload = json.loads(mailgun_body(mg_event("delivered"), key="key-subaccount"))
    block = payload["signature"]
    block["parent-signature"] = hmac.new(
        parent_key.encode(), (block["timestamp"] + block["token"]).encode(), hashlib.sha256
    ).hexdigest()
    assert MailgunEvents(parent_key).events({}, compact(payload), now=NOW)
    rejected(lambda: MailgunEvents("key-other").events({}, compact(payload), now=NOW), 401)


def test_mailgun_old_timestamp_and_reused_token_are_403() -> None:
    old = mailgun_body(mg_event("delivered"), at=NOW_UNIX - 16 * 60)
    rejected(lambda: MailgunEvents(MG_KEY).events({}, old, now=NOW), 403)
    used: set[str] = set()

    def seen(token: str) -> bool:
        if token in used:
            return True
        used.add(token)
        return False

    verifier = MailgunEvents(MG_KEY, seen_token=seen)
    body = mailgun_body(mg_event("delivered"))
    assert verifier.events({}, body, now=NOW)
    replayed = json.loads(body)
    replayed["event-data"] = mg_event("unsubscribed")  # the event is not signed
    rejected(lambda: verifier.events({}, compact(replayed), now=NOW), 403)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{nope", "mailgun body"),
        (b"[]", "mailgun body"),
        (mailgun_body(None)[:-1] + b"}", "mailgun body.event-data"),
        (mailgun_body([1, 2]), "mailgun body.event-data"),
        (mailgun_body(mg_event("delivered", recipient=3)), "mailgun body.event-data.recipient"),
        (mailgun_body(mg_event("opened", timestamp="soon")), "mailgun body.event-data.timestamp"),
        (
            mailgun_body(mg_event("opened", **{"user-variables": "x"})),
            "mailgun body.event-data.user-variables",
        ),
        (
            mailgun_body(mg_event("failed", **{"delivery-status": 5})),
            "mailgun body.event-data.delivery-status",
        ),
        (mailgun_body(mg_event("clicked")), "mailgun body.event-data.url"),
    ],
)
def test_mailgun_malformed_body_is_400_naming_what_is_wrong(body: bytes, where: str) -> None:
    error = rejected(lambda: MailgunEvents(MG_KEY).events({}, body, now=NOW), 400)
    assert error.where == where


def test_mailgun_missing_event_data_is_400() -> None:
    payload = json.loads(mailgun_body(None))
    del payload["event-data"]
    error = rejected(lambda: MailgunEvents(MG_KEY).events({}, compact(payload), now=NOW), 400)
    assert error.where == "mailgun body.event-data"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
MG_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from(["delivered", "opened", "clicked", "failed"]) | JSON,
        "id": JSON,
        "timestamp": st.integers() | st.floats() | JSON,
        "recipient": JSON,
        "severity": JSON,
        "reason": JSON,
        "url": JSON,
        "client-info": JSON,
        "delivery-status": JSON,
        "user-variables": JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(data=MG_FIELDS | JSON)
def test_mailgun_any_signed_event_data_gives_events_or_a_400(data: object) -> None:
    body = mailgun_body(data)
    try:
        events = MailgunEvents(MG_KEY).events({}, body, now=NOW)
    except WebhookRejected as error:
        assert error.status == 400
    else:
        assert all(isinstance(event, ProviderEvent) for event in events)


# --- Postmark -----------------------------------------------------------------------------------
# Postmark does not sign webhooks; Basic auth in the URL or a custom header:
# https://postmarkapp.com/developer/webhooks/webhooks-overview
# Payloads: https://postmarkapp.com/developer/webhooks/bounce-webhook,
# .../delivery-webhook, .../open-tracking-webhook, .../click-webhook,
# .../spam-complaint-webhook, .../subscription-change-webhook;
# bounce types: https://postmarkapp.com/developer/api/bounce-api

PM_AUTH = {"Authorization": "Basic " + base64.b64encode(b"nk-hooks:s3cret-pass").decode()}
PM = PostmarkEvents(username="nk-hooks", password="s3cret-pass")
PM_METADATA = {"nk_send_key": "enr-1:welcome:0", "lead": "l-1"}

PM_DELIVERY = {
    "RecordType": "Delivery",
    "ServerID": 23,
    "MessageStream": "outbound",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Recipient": "ann@example.co.jp",
    "Tag": "welcome-email",
    "DeliveredAt": "2026-04-01T18:00:00.1234567+09:00",
    "Details": "Test delivery webhook details",
    "Metadata": PM_METADATA,
}
PM_BOUNCE = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user).",
    "Details": "Test bounce details",
    "Email": "ann@example.co.jp",
    "From": "sender@example.com",
    "BouncedAt": "2026-04-01T09:00:00Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Test subject",
    "Content": "<Full dump of bounce>",
    "Metadata": PM_METADATA,
}
PM_OPEN = {
    "RecordType": "Open",
    "MessageStream": "outbound",
    "FirstOpen": True,
    "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
    "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
    "Platform": "WebMail",
    "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5)",
    "ReadSeconds": 5,
    "Geo": {"CountryISOCode": "JP", "Country": "Japan"},
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Metadata": PM_METADATA,
    "ReceivedAt": "2026-04-01T09:00:00Z",
    "Tag": "welcome-email",
    "Recipient": "ann@example.co.jp",
}
PM_CLICK = dict(
    PM_OPEN,
    RecordType="Click",
    ClickLocation="HTML",
    OriginalLink="https://example.co.jp/case-study",
)
PM_COMPLAINT = dict(
    PM_BOUNCE, RecordType="SpamComplaint", ID=42, Type="SpamComplaint", TypeCode=512
)
PM_SUBSCRIPTION = {
    "RecordType": "SubscriptionChange",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "ServerID": 123456,
    "MessageStream": "outbound",
    "ChangedAt": "2026-04-01T09:00:00Z",
    "Recipient": "ann@example.co.jp",
    "Origin": "Recipient",
    "SuppressSending": True,
    "SuppressionReason": "ManualSuppression",
    "Tag": "my-tag",
    "Metadata": PM_METADATA,
}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (PM_DELIVERY, ("delivered", False, None)),
        (PM_BOUNCE, ("bounce", True, None)),
        (dict(PM_BOUNCE, Type="SoftBounce", Inactive=False), ("bounce", False, None)),
        (dict(PM_BOUNCE, Type="Transient", Inactive=False), ("bounce", False, None)),
        (dict(PM_BOUNCE, Type="SpamNotification", Inactive=False), ("bounce", True, None)),
        (dict(PM_BOUNCE, Type="Blocked", Inactive=True), ("bounce", True, None)),
        (dict(PM_BOUNCE, Type="SMTPApiError", Inactive=False), ("dropped", False, None)),
        (PM_COMPLAINT, ("complaint", False, None)),
        (PM_OPEN, ("open", False, None)),
        (PM_CLICK, ("click", False, "https://example.co.jp/case-study")),
        (PM_SUBSCRIPTION, ("unsubscribe", False, None)),
    ],
)
def test_postmark_maps_each_documented_record(
    record: dict[str, object], expected: tuple[object, ...]
) -> None:
    [event] = PM.events(PM_AUTH, compact(record), now=NOW)
    assert (event.kind, event.hard, event.url) == expected
    assert event.provider == "postmark"
    assert event.send_key == "enr-1:welcome:0"
    assert event.recipient == "ann@example.co.jp"
    # DeliveredAt has seven fractional digits and a +09:00 offset
    assert event.at == (NOW.replace(microsecond=123456) if record is PM_DELIVERY else NOW)
    assert event.machine is False
    if record["RecordType"] in ("Bounce", "SpamComplaint"):
        assert event.event_id == str(record["ID"])
    else:
        assert event.event_id.startswith("sha256:")


def test_postmark_stable_id_and_skipped_records() -> None:
    first = PM.events(PM_AUTH, compact(PM_OPEN), now=NOW)[0].event_id
    assert PM.events(PM_AUTH, json.dumps(PM_OPEN, indent=2).encode(), now=NOW)[0].event_id == first
    later = dict(PM_OPEN, ReceivedAt="2026-04-01T09:05:00Z", FirstOpen=False)
    assert PM.events(PM_AUTH, compact(later), now=NOW)[0].event_id != first
    for record in (
        dict(PM_BOUNCE, Type="AutoResponder"),
        dict(PM_SUBSCRIPTION, SuppressSending=False),
        dict(PM_SUBSCRIPTION, SuppressionReason="HardBounce"),
        {"RecordType": "Inbound", "FromFull": {}},
    ):
        assert PM.events(PM_AUTH, compact(record), now=NOW) == []


def test_postmark_wrong_or_missing_credentials_are_401_before_the_body_is_read() -> None:
    wrong = {"Authorization": "Basic " + base64.b64encode(b"nk-hooks:guess").decode()}
    for headers in (wrong, {}, {"Authorization": "Bearer x"}, {"Authorization": "Basic %%"}):
        rejected(functools.partial(PM.events, headers, b"{not json", now=NOW), 401)
    rejected(lambda: PM.events(PM_AUTH, b"{not json", now=NOW), 400)


def test_postmark_secret_header_alone_or_with_basic_auth() -> None:
    header_only = PostmarkEvents(secret_header=("X-Nk-Webhook", "long-random-value"))
    body = compact(PM_DELIVERY)
    assert header_only.events({"x-nk-webhook": "long-random-value"}, body, now=NOW)
    rejected(lambda: header_only.events({"X-Nk-Webhook": "long-random"}, body, now=NOW), 401)
    rejected(lambda: header_only.events(PM_AUTH, body, now=NOW), 401)
    both = PostmarkEvents("nk-hooks", "s3cret-pass", ("X-Nk-Webhook", "long-random-value"))
    assert both.events(dict(PM_AUTH, **{"X-Nk-Webhook": "long-random-value"}), body, now=NOW)
    rejected(lambda: both.events(PM_AUTH, body, now=NOW), 401)


def test_postmark_needs_a_check_configured() -> None:
    with pytest.raises(InvalidInput, match="does not sign"):
        PostmarkEvents()
    with pytest.raises(InvalidInput):
        PostmarkEvents(username="only-user")
    with pytest.raises(InvalidInput):
        PostmarkEvents(username="a:b", password="c")
    with pytest.raises(InvalidInput):
        PostmarkEvents(secret_header=("X-Nk", ""))


@pytest.mark.parametrize(
    ("record", "where"),
    [
        ({"Recipient": "ann@example.co.jp"}, "postmark body.RecordType"),
        (dict(PM_DELIVERY, DeliveredAt="2026-04-01T09:00:00"), "postmark body.DeliveredAt"),
        (dict(PM_DELIVERY, DeliveredAt="April 1st"), "postmark body.DeliveredAt"),
        (dict(PM_DELIVERY, DeliveredAt="2026-02-30T09:00:00Z"), "postmark body.DeliveredAt"),
        (dict(PM_OPEN, Recipient=None), "postmark body.Recipient"),
        (dict(PM_BOUNCE, ID=None), "postmark body.ID"),
        (dict(PM_BOUNCE, Inactive="yes"), "postmark body.Inactive"),
        (dict(PM_CLICK, OriginalLink=5), "postmark body.OriginalLink"),
        (dict(PM_DELIVERY, Metadata=["nk_send_key"]), "postmark body.Metadata"),
        (dict(PM_SUBSCRIPTION, SuppressSending="true"), "postmark body.SuppressSending"),
    ],
)
def test_postmark_malformed_body_is_400_naming_what_is_wrong(
    record: dict[str, object], where: str
) -> None:
    error = rejected(lambda: PM.events(PM_AUTH, compact(record), now=NOW), 400)
    assert error.where == where


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200) | JSON.map(compact))
def test_postmark_any_body_gives_events_or_a_400(body: bytes) -> None:
    try:
        PM.events(PM_AUTH, body, now=NOW)
    except WebhookRejected as error:
        assert error.status == 400


# --- Amazon SES through SNS ---------------------------------------------------------------------
# SNS message and signature: https://docs.aws.amazon.com/sns/latest/dg/http-notification-json.html,
# https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html,
# https://docs.aws.amazon.com/sns/latest/dg/http-subscription-confirmation-json.html
# SES events: https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html

SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SNS_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
SNS_CERT_PEM = (
    x509.CertificateBuilder()
    .subject_name(SNS_NAME)
    .issuer_name(SNS_NAME)
    .public_key(SNS_KEY.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(NOW - timedelta(days=30))
    .not_valid_after(NOW + timedelta(days=30))
    .sign(SNS_KEY, hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
)
CERT_URL = (
    "https://sns.ap-northeast-1.amazonaws.com/"
    "SimpleNotificationService-01d088a6f77103d0fe307c0069e40ed6.pem"
)
TOPIC = "arn:aws:sns:ap-northeast-1:123456789012:nk-ses-events"


class Fetcher:
    def __init__(self, pem: bytes = SNS_CERT_PEM) -> None:
        self.pem = pem
        self.urls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


def sns_sign(message: dict[str, Any], version: str = "2") -> dict[str, Any]:
    # written here from the SNS documentation, independently of nurturekit.providers.ses
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{name}\n{message[name]}\n" for name in names if name in message)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = SNS_KEY.sign(text.encode("utf-8"), padding.PKCS1v15(), digest)
    return dict(
        message,
        SignatureVersion=version,
        Signature=base64.b64encode(signature).decode(),
        SigningCertURL=CERT_URL,
    )


def sns_notification(
    ses_event: dict[str, Any] | str,
    *,
    version: str = "2",
    timestamp: str = "2026-04-01T08:59:58.719Z",
    message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
) -> tuple[dict[str, str], bytes]:
    message = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": TOPIC,
        "Message": ses_event if isinstance(ses_event, str) else json.dumps(ses_event),
        "Timestamp": timestamp,
        "UnsubscribeURL": "https://sns.ap-northeast-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": TOPIC,
    }
    return headers, json.dumps(sns_sign(message, version), indent=2).encode()


def ses_mail(**fields: object) -> dict[str, object]:
    mail: dict[str, object] = {
        "timestamp": "2026-04-01T08:58:00.012Z",
        "source": "Sender Name <sender@example.com>",
        "sourceArn": "arn:aws:ses:ap-northeast-1:123456789012:identity/sender@example.com",
        "sendingAccountId": "123456789012",
        "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "destination": ["ann@example.co.jp"],
        "headersTruncated": False,
        "tags": {
            "ses:configuration-set": ["ConfigSet"],
            "ses:source-ip": ["192.0.2.0"],
            "nk_send_key": ["enr-1_3Awelcome_3A0"],
        },
    }
    mail.update(fields)
    return mail


def decode_tag(value: str) -> str:
    # stands in for nurturekit.mail.ses.decode_tag: "_XX" is the byte 0xXX
    if "__" in value:
        raise ValueError("broken escape")
    return value.replace("_3A", ":")


SES_BOUNCE: dict[str, Any] = {
    "eventType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "ann@example.co.jp",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": "2026-04-01T08:59:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA": "dsn; mta.example.com",
    },
    "mail": ses_mail(),
}


def ses(**changes: Any) -> SesEvents:
    arguments: dict[str, Any] = {
        "fetch_certificate": Fetcher(),
        "topic_arns": [TOPIC],
        "decode_key": decode_tag,
    }
    arguments.update(changes)
    return SesEvents(**arguments)


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_bounce_through_sns_with_either_signature_version(version: str) -> None:
    headers, body = sns_notification(SES_BOUNCE, version=version)
    [event] = ses().events(headers, body, now=NOW)
    assert event == ProviderEvent(
        provider="ses",
        event_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        kind="bounce",
        send_key="enr-1:welcome:0",
        recipient="ann@example.co.jp",
        at=datetime(2026, 4, 1, 8, 59, 2, 669000, tzinfo=UTC),
        hard=True,
        detail="Permanent/General: smtp; 550 5.1.1 user unknown",
    )


def ses_event(name: str, part: str | None, body: dict[str, Any] | None, **mail: Any) -> Any:
    event: dict[str, Any] = {"eventType": name, "mail": ses_mail(**mail)}
    if part is not None:
        event[part] = body
    return event


TRANSIENT = dict(SES_BOUNCE["bounce"], bounceType="Transient", bounceSubType="MailboxFull")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ses_event("Bounce", "bounce", TRANSIENT), [("bounce", False, None)]),
        (
            ses_event(
                "Delivery",
                "delivery",
                {
                    "timestamp": "2026-04-01T08:59:00.000Z",
                    "processingTimeMillis": 546,
                    "recipients": ["ann@example.co.jp"],
                    "smtpResponse": "250 ok:  Message 64111812 accepted",
                },
            ),
            [("delivered", False, None)],
        ),
        (
            ses_event(
                "Open",
                "open",
                {"ipAddress": "192.0.2.1", "timestamp": "2026-04-01T08:59:00.000Z"},
            ),
            [("open", False, None)],
        ),
        (
            ses_event(
                "Click",
                "click",
                {
                    "ipAddress": "192.0.2.1",
                    "link": "https://example.co.jp/case-study",
                    "linkTags": {"samplekey0": ["samplevalue0"]},
                    "timestamp": "2026-04-01T08:59:00.000Z",
                    "userAgent": "Mozilla/5.0",
                },
            ),
            [("click", False, "https://example.co.jp/case-study")],
        ),
        (
            ses_event(
                "Complaint",
                "complaint",
                {
                    "complainedRecipients": [{"emailAddress": "ann@example.co.jp"}],
                    "timestamp": "2026-04-01T08:59:00.000Z",
                    "feedbackId": "01000157c44f053b-61b59c11",
                    "complaintFeedbackType": "abuse",
                },
            ),
            [("complaint", False, None)],
        ),
        (
            ses_event(
                "DeliveryDelay",
                "deliveryDelay",
                {
                    "timestamp": "2026-04-01T08:59:00.000Z",
                    "delayType": "TransientCommunicationFailure",
                    "expirationTime": "2026-04-02T08:58:00.000Z",
                    "delayedRecipients": [
                        {
                            "emailAddress": "ann@example.co.jp",
                            "status": "4.4.1",
                            "diagnosticCode": "smtp; 421 4.4.1 Unable to connect",
                        }
                    ],
                },
            ),
            [("deferred", False, None)],
        ),
        (
            ses_event("Reject", "reject", {"reason": "Bad content"}),
            [("dropped", False, None)],
        ),
        (
            ses_event(
                "Subscription",
                "subscription",
                {
                    "contactList": "ContactListName",
                    "timestamp": "2026-04-01T08:59:00.000Z",
                    "source": "UnsubscribeHeader",
                    "newTopicPreferences": {
                        "unsubscribeAll": True,
                        "topicSubscriptionStatus": [
                            {"topicName": "ExampleTopicName", "subscriptionStatus": "OptOut"}
                        ],
                    },
                    "oldTopicPreferences": {"unsubscribeAll": False},
                },
            ),
            [("unsubscribe", False, None)],
        ),
        (ses_event("Send", "send", {}), []),
    ],
)
def test_ses_maps_each_documented_event(event: Any, expected: list[tuple[object, ...]]) -> None:
    headers, body = sns_notification(event)
    events = ses().events(headers, body, now=NOW)
    assert [(e.kind, e.hard, e.url) for e in events] == expected
    for item in events:
        assert item.send_key == "enr-1:welcome:0"
        assert item.recipient == "ann@example.co.jp"
        assert item.event_id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
        expected_at = "2026-04-01T08:58:00.012Z" if event["eventType"] == "Reject" else None
        if expected_at is None:
            expected_at = event[next(k for k in event if k not in ("eventType", "mail"))].get(
                "timestamp"
            )
        assert item.at.isoformat().replace("+00:00", "Z")[:19] == expected_at[:19]


def test_ses_several_recipients_get_an_event_id_each() -> None:
    event = ses_event(
        "Open", "open", {"timestamp": "2026-04-01T08:59:00.000Z"}, destination=["a@x.jp", "b@x.jp"]
    )
    headers, body = sns_notification(event)
    ids = [e.event_id for e in ses().events(headers, body, now=NOW)]
    assert ids == [
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324/a@x.jp",
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324/b@x.jp",
    ]


def test_ses_without_tags_or_decoder_and_the_validation_message() -> None:
    untagged = dict(SES_BOUNCE, mail=ses_mail(tags=None))
    headers, body = sns_notification(untagged)
    assert ses().events(headers, body, now=NOW)[0].send_key is None
    headers, body = sns_notification(SES_BOUNCE)
    # By default the tag is decoded as SesMailer escapes it; a decoder of one's own replaces that.
    decoded = SesEvents(Fetcher(), [TOPIC]).events(headers, body, now=NOW)
    assert decoded[0].send_key == "enr-1:welcome:0"
    raw = SesEvents(Fetcher(), [TOPIC], decode_key=str).events(headers, body, now=NOW)
    assert raw[0].send_key == "enr-1_3Awelcome_3A0"
    headers, body = sns_notification(
        "Successfully validated SNS topic for Amazon SES event publishing."
    )
    assert ses().events(headers, body, now=NOW) == []


def test_ses_subscription_confirmation_gives_no_events_but_its_url() -> None:
    subscribe_url = (
        "https://sns.ap-northeast-1.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425"
    )
    message = sns_sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e2425",
            "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-04-01T08:59:00.000Z",
        }
    )
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    body = compact(message)
    verifier = ses()
    assert verifier.events(headers, body, now=NOW) == []
    assert verifier.confirmation(headers, body, now=NOW) == subscribe_url
    notification_headers, notification = sns_notification(SES_BOUNCE)
    assert verifier.confirmation(notification_headers, notification, now=NOW) is None
    forged = compact(dict(message, SubscribeURL="https://evil.example/confirm"))
    rejected(lambda: verifier.confirmation(headers, forged, now=NOW), 401)


def test_ses_bad_signature_is_401_and_gives_no_events() -> None:
    headers, body = sns_notification(SES_BOUNCE)
    message = json.loads(body)
    verifier = ses()
    changed = dict(message, Message=message["Message"].replace("Permanent", "Transient"))
    rejected(lambda: verifier.events(headers, compact(changed), now=NOW), 401)
    other_version = dict(message, SignatureVersion="1")
    rejected(lambda: verifier.events(headers, compact(other_version), now=NOW), 401)
    for name in ("Signature", "SignatureVersion", "SigningCertURL"):
        missing = {key: value for key, value in message.items() if key != name}
        rejected(functools.partial(verifier.events, headers, compact(missing), now=NOW), 401)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_cert = (
        x509.CertificateBuilder()
        .subject_name(SNS_NAME)
        .issuer_name(SNS_NAME)
        .public_key(other_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(other_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    rejected(lambda: ses(fetch_certificate=Fetcher(other_cert)).events(headers, body, now=NOW), 401)
    rejected(lambda: ses(fetch_certificate=Fetcher(b"junk")).events(headers, body, now=NOW), 401)
    expired = ses().events
    rejected(lambda: expired(headers, body, now=NOW + timedelta(days=31)), 401)


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.ap-northeast-1.amazonaws.com.evil.example/SimpleNotificationService-1.pem",
        "https://evil.example/SimpleNotificationService-1.pem",
        "http://sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.ap-northeast-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://user@sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.ap-northeast-1.amazonaws.com/SimpleNotificationService-1.txt",
        "https://s3.ap-northeast-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.amazonaws.com/SimpleNotificationService-1.pem",
    ],
)
def test_ses_cert_url_off_an_sns_host_is_401_without_fetching(url: str) -> None:
    headers, body = sns_notification(SES_BOUNCE)
    moved = compact(dict(json.loads(body), SigningCertURL=url))
    fetcher = Fetcher()
    rejected(lambda: ses(fetch_certificate=fetcher).events(headers, moved, now=NOW), 401)
    assert fetcher.urls == []


def test_ses_china_region_cert_host_is_accepted() -> None:
    headers, body = sns_notification(SES_BOUNCE)
    china = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem"
    moved = compact(dict(json.loads(body), SigningCertURL=china))
    fetcher = Fetcher()
    # the URL is not signed: the same certificate under another SNS URL still verifies
    assert ses(fetch_certificate=fetcher).events(headers, moved, now=NOW)
    assert fetcher.urls == [china]


def test_ses_topic_not_configured_is_403_without_fetching() -> None:
    headers, body = sns_notification(SES_BOUNCE)
    fetcher = Fetcher()
    other = ses(fetch_certificate=fetcher, topic_arns=["arn:aws:sns:us-east-1:1:other"])
    rejected(lambda: other.events(headers, body, now=NOW), 403)
    assert fetcher.urls == []
    assert ses(topic_arns=None).events(headers, body, now=NOW)


def test_ses_old_message_is_403_and_certificates_are_fetched_once() -> None:
    fetcher = Fetcher()
    verifier = ses(fetch_certificate=fetcher)
    headers, old = sns_notification(SES_BOUNCE, timestamp="2026-04-01T07:59:00.000Z")
    rejected(lambda: verifier.events(headers, old, now=NOW), 403)
    headers, body = sns_notification(SES_BOUNCE)
    assert verifier.events(headers, body, now=NOW)
    assert verifier.events(headers, body, now=NOW)
    assert fetcher.urls == [CERT_URL]


def test_ses_certificate_that_cannot_be_fetched_is_503() -> None:
    def failing(url: str) -> bytes:
        raise OSError("connection refused")

    headers, body = sns_notification(SES_BOUNCE)
    error = rejected(lambda: ses(fetch_certificate=failing).events(headers, body, now=NOW), 503)
    assert "connection refused" in str(error)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda m: b"{" + m, "ses body"),
        (lambda m: b"[]", "ses body"),
        (lambda m: m.replace(b'"Type": "Notification"', b'"Type": "Other"'), "ses body.Type"),
        (lambda m: m.replace(b'"MessageId"', b'"MessageID"'), "ses body.MessageId"),
    ],
)
def test_ses_malformed_envelope_is_400(change: Callable[[bytes], bytes], where: str) -> None:
    headers, body = sns_notification(SES_BOUNCE)
    error = rejected(lambda: ses().events(headers, change(body), now=NOW), 400)
    assert error.where == where


@pytest.mark.parametrize(
    ("ses_event_json", "where"),
    [
        ("not json", "ses body.Message"),
        (dict(SES_BOUNCE, mail=None), "ses body.Message.mail"),
        (dict(SES_BOUNCE, eventType=None), "ses body.Message.eventType"),
        (dict(SES_BOUNCE, bounce={"bounceType": "Permanent"}), "ses body.Message.bounce"),
        (
            dict(SES_BOUNCE, mail=ses_mail(tags={"nk_send_key": "x"})),
            "ses body.Message.mail.tags.nk_send_key",
        ),
        (
            dict(SES_BOUNCE, mail=ses_mail(tags={"nk_send_key": ["bad__escape"]})),
            "ses body.Message.mail.tags.nk_send_key[0]",
        ),
        (ses_event("Open", "open", {"timestamp": 5}), "ses body.Message.open.timestamp"),
        (ses_event("Click", "click", {}), "ses body.Message.click.link"),
    ],
)
def test_ses_malformed_event_is_400_once_signed(ses_event_json: Any, where: str) -> None:
    headers, body = sns_notification(ses_event_json)
    error = rejected(lambda: ses().events(headers, body, now=NOW), 400)
    assert error.where.startswith(where), error.where


def test_ses_header_type_must_match_the_body() -> None:
    headers, body = sns_notification(SES_BOUNCE)
    headers["x-amz-sns-message-type"] = "SubscriptionConfirmation"
    rejected(lambda: ses().events(headers, body, now=NOW), 400)


def test_ses_arguments_are_checked() -> None:
    with pytest.raises(InvalidInput):
        SesEvents(Fetcher(), topic_arns=TOPIC)
    with pytest.raises(InvalidInput):
        SesEvents(Fetcher(), topic_arns=[])
    with pytest.raises(InvalidInput):
        SesEvents(Fetcher(), tolerance=timedelta(seconds=-1))


# --- the event --------------------------------------------------------------------------------


def test_provider_event_refuses_an_unknown_kind_and_a_naive_time() -> None:
    fields: dict[str, Any] = {
        "provider": "sendgrid",
        "event_id": "e1",
        "kind": "open",
        "send_key": None,
        "recipient": "ann@example.co.jp",
        "at": NOW,
    }
    assert ProviderEvent(**fields).hard is False
    with pytest.raises(ValueError):
        ProviderEvent(**dict(fields, kind="opened"))
    with pytest.raises(NaiveDatetime):
        ProviderEvent(**dict(fields, at=datetime(2026, 4, 1)))
    jst = timezone(timedelta(hours=9))
    assert ProviderEvent(**dict(fields, at=NOW.astimezone(jst))).at.tzinfo is UTC


def test_now_must_be_aware() -> None:
    with pytest.raises(NaiveDatetime):
        PM.events(PM_AUTH, compact(PM_OPEN), now=datetime(2026, 4, 1))
