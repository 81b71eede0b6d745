"""SendGridMailer, PostmarkMailer and SesMailer against real HTTP servers on 127.0.0.1 that
answer as the providers document: no mocks of http.client. The SES signature is checked by
the server, recomputed here independently of nurturekit's signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest
from engine_fixtures import World

from nurturekit import Lead
from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.lead import ContactStatus
from nurturekit.mail._http import MAX_RETRY_AFTER, retry_after
from nurturekit.mail._sigv4 import sign
from nurturekit.mail.postmark import PostmarkMailer
from nurturekit.mail.sendgrid import SendGridMailer
from nurturekit.mail.ses import SesMailer, decode_tag, encode_tag
from nurturekit.messages import OutgoingMail, Sender, SendStatus
from nurturekit.ports import Storage
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.templates import Template, compose, message_bytes

LOCALHOST = "127.0.0.1"
SENDGRID_KEY = "SG.test-key.abcdefghijklmnop"
POSTMARK_TOKEN = "pm-server-token-0000-1111"
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

SENDER = Sender(
    name="株式会社ナーチャー",
    address="news@nurture.example.jp",
    postal_address="〒100-0001 東京都千代田区千代田1-1",
    unsubscribe_mailto="unsubscribe@nurture.example.jp",
)
CASE_STUDY = Template(
    name="case_study",
    subject="【ご案内】導入事例のご紹介",
    text="{{ name }} 様\n\n導入事例をご紹介します。\n",
    html="<html><body><p>{{ name }} 様</p><p>導入事例をご紹介します。</p></body></html>",
)


def mail(address: str = "tanaka@example.co.jp", *, key: str = "enr-1/case/0") -> OutgoingMail:
    lead = Lead(id="lead-1", email=address, name="田中 太郎")
    return compose(
        CASE_STUDY,
        lead,
        SENDER,
        key=key,
        created_at=datetime(2026, 4, 1, 0, 30, tzinfo=timezone.utc),
        unsubscribe_url=f"https://nurture.example.jp/u?t={urllib.parse.quote(key, safe='')}",
    )


def mails(count: int) -> list[OutgoingMail]:
    return [mail(f"lead{n}@example.co.jp", key=f"enr-{n}/case/0") for n in range(count)]


def unsafe(good: OutgoingMail) -> OutgoingMail:
    """``good`` with a header that would inject a Bcc: it can never be built."""
    return attrs.evolve(good, headers=(*good.headers, ("X-Campaign", "a\r\nBcc: x@evil.test")))


# --- the servers ----------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request as the server read it off the wire."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, dict[str, str], bytes]


def answer(status: int, document: object = None, **headers: str) -> Answer:
    body = b"" if document is None else json.dumps(document).encode()
    return status, {"Content-Type": "application/json", **headers}, body


@dataclass
class Provider:
    """A fake provider API: records each request and answers with ``respond``."""

    respond: Callable[[Seen], Answer]
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: nothing to report


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen = Seen(
                self.command,
                self.path,
                {name.lower(): value for name, value in self.headers.items()},
                body,
                self.client_address[1],
            )
            with provider.lock:
                provider.requests.append(seen)
            status, headers, data = provider.respond(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


Serve = Callable[[Callable[[Seen], Answer]], Provider]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a provider on 127.0.0.1 (port 0) that answers with ``respond``."""
    servers: list[ThreadingHTTPServer] = []

    def start(respond: Callable[[Seen], Answer]) -> Provider:
        provider = Provider(respond)
        server = _Server((LOCALHOST, 0), _handler(provider))
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        servers.append(server)
        provider.url = f"http://{LOCALHOST}:{server.server_address[1]}"
        return provider

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


# --- SendGrid ------------------------------------------------------------------------------------


def sendgrid_to(seen: Seen) -> str:
    address: str = seen.json()["personalizations"][0]["to"][0]["email"]
    return address


def accepted(seen: Seen) -> Answer:
    return 202, {"X-Message-Id": "sg-msg-1"}, b""


def test_sendgrid_sends_each_mail_in_its_own_request_with_its_key_in_custom_args(
    serve: Serve,
) -> None:
    provider = serve(accepted)
    batch = [mail("a@example.co.jp", key="enr-1/case/0"), mail("b@example.jp", key="enr-2/x/0")]
    results = list(SendGridMailer(SENDGRID_KEY, base_url=provider.url).send(batch))
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    assert [r.key for r in results] == ["enr-1/case/0", "enr-2/x/0"]
    assert "sg-msg-1" in results[0].detail
    first, second = provider.requests
    assert (first.method, first.path) == ("POST", "/v3/mail/send")
    assert first.headers["authorization"] == f"Bearer {SENDGRID_KEY}"
    assert first.headers["content-type"] == "application/json"
    assert first.client_port == second.client_port  # one keep-alive connection
    body = first.json()
    assert body["personalizations"] == [{"to": [{"email": "a@example.co.jp"}]}]
    assert body["from"] == {"email": "news@nurture.example.jp", "name": "株式会社ナーチャー"}
    assert body["subject"] == "【ご案内】導入事例のご紹介"
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert "導入事例をご紹介します。" in body["content"][0]["value"]
    assert body["custom_args"] == {"nk_send_key": "enr-1/case/0"}
    # nurturekit tracks opens and clicks itself: SendGrid's own tracking is off.
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": False, "enable_text": False},
        "open_tracking": {"enable": False},
    }
    assert body["headers"]["List-Unsubscribe"].startswith("<https://nurture.example.jp/u?t=")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Message-ID" not in body["headers"]  # SendGrid sets it; the key rides custom_args
    assert second.json()["custom_args"] == {"nk_send_key": "enr-2/x/0"}


def test_sendgrid_yields_each_result_before_the_next_request(serve: Serve) -> None:
    provider = serve(accepted)
    results = SendGridMailer(SENDGRID_KEY, base_url=provider.url).send(mails(3))
    assert next(iter(results)).status is SendStatus.SENT
    assert len(provider.requests) == 1
    assert isinstance(results, Generator)
    results.close()  # the engine stops here when the next lead unsubscribed
    assert len(provider.requests) == 1


def test_sendgrid_429_defers_with_retry_after_and_the_rest_without_a_request(
    serve: Serve,
) -> None:
    def respond(seen: Seen) -> Answer:
        if sendgrid_to(seen) == "lead1@example.co.jp":
            return answer(
                429,
                {"errors": [{"field": None, "message": "too many requests"}]},
                **{"Retry-After": "30"},
            )
        return accepted(seen)

    provider = serve(respond)
    results = list(SendGridMailer(SENDGRID_KEY, base_url=provider.url).send(mails(3)))
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.DEFERRED,
        SendStatus.DEFERRED,
    ]
    assert results[1].retry_after == timedelta(seconds=30)
    assert "too many requests" in results[1].detail
    assert results[2].retry_after == timedelta(seconds=30)
    assert results[2].detail.startswith("not tried")
    assert len(provider.requests) == 2


def test_sendgrid_reads_retry_after_as_an_http_date_or_falls_back_to_the_rate_limit_reset(
    serve: Serve,
) -> None:
    provider = serve(
        lambda seen: answer(
            429, {"errors": []}, **{"Retry-After": formatdate(time.time() + 90, usegmt=True)}
        )
    )
    [result] = SendGridMailer(SENDGRID_KEY, base_url=provider.url).send([mail()])
    assert result.retry_after is not None
    assert timedelta(seconds=85) <= result.retry_after <= timedelta(seconds=91)

    reset = str(int(time.time()) + 60)
    provider = serve(lambda seen: answer(429, {"errors": []}, **{"X-RateLimit-Reset": reset}))
    [result] = SendGridMailer(SENDGRID_KEY, base_url=provider.url).send([mail()])
    assert result.retry_after is not None
    assert timedelta(seconds=55) <= result.retry_after <= timedelta(seconds=61)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", timedelta(0)),
        ("120", timedelta(seconds=120)),
        ("99999999999999", MAX_RETRY_AFTER),
        ("Wed, 01 Apr 2026 00:01:30 GMT", timedelta(seconds=90)),
        ("Wed, 01 Apr 2026 00:00:00 GMT", timedelta(0)),  # already past
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date_from_the_answer_date(
    header: str, expected: timedelta | None
) -> None:
    headers = {"Retry-After": header, "Date": "Wed, 01 Apr 2026 00:00:00 GMT"}
    assert retry_after(headers) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, SendStatus.REJECTED),
        (413, SendStatus.REJECTED),
        (500, SendStatus.DEFERRED),
        (503, SendStatus.DEFERRED),
    ],
)
def test_sendgrid_maps_a_refusal_of_one_mail_and_goes_on_with_the_next(
    serve: Serve, status: int, expected: SendStatus
) -> None:
    errors = {"errors": [{"field": "subject", "message": "The subject is required."}]}

    def respond(seen: Seen) -> Answer:
        if sendgrid_to(seen) == "lead0@example.co.jp":
            return answer(status, errors)
        return accepted(seen)

    provider = serve(respond)
    results = list(SendGridMailer(SENDGRID_KEY, base_url=provider.url).send(mails(2)))
    assert [r.status for r in results] == [expected, SendStatus.SENT]
    assert "subject: The subject is required." in results[0].detail
    assert len(provider.requests) == 2


def test_sendgrid_truncates_a_long_error_to_about_500_characters(serve: Serve) -> None:
    provider = serve(lambda seen: answer(400, {"errors": [{"message": "x" * 5000}]}))
    [result] = SendGridMailer(SENDGRID_KEY, base_url=provider.url).send([mail()])
    assert result.status is SendStatus.REJECTED
    assert len(result.detail) <= 600


@pytest.mark.parametrize("status", [401, 403])
def test_sendgrid_refused_key_makes_the_mailer_unavailable_without_showing_the_key(
    serve: Serve, status: int
) -> None:
    provider = serve(
        lambda seen: answer(status, {"errors": [{"message": f"bad key {SENDGRID_KEY}"}]})
    )
    mailer = SendGridMailer(SENDGRID_KEY, base_url=provider.url)
    results = mailer.send(mails(2))
    with pytest.raises(MailerUnavailable) as raised:
        next(iter(results))
    assert SENDGRID_KEY not in str(raised.value)
    assert str(status) in str(raised.value)
    assert SENDGRID_KEY not in repr(mailer)
    assert len(provider.requests) == 1


def test_sendgrid_unreachable_api_raises_before_any_result() -> None:
    mailer = SendGridMailer(SENDGRID_KEY, base_url=f"http://{LOCALHOST}:{free_port()}")
    with pytest.raises(MailerUnavailable, match="cannot connect"):
        mailer.send([mail()])


def test_sendgrid_timeout_defers_that_mail_and_the_next_goes_on_a_new_connection(
    serve: Serve,
) -> None:
    def respond(seen: Seen) -> Answer:
        if sendgrid_to(seen) == "lead0@example.co.jp":
            time.sleep(1.0)
        return accepted(seen)

    provider = serve(respond)
    results = list(SendGridMailer(SENDGRID_KEY, base_url=provider.url, timeout=0.3).send(mails(2)))
    assert [r.status for r in results] == [SendStatus.DEFERRED, SendStatus.SENT]
    assert "no answer" in results[0].detail
    assert provider.requests[0].client_port != provider.requests[1].client_port


def test_sendgrid_rejects_an_unbuildable_mail_in_its_place_and_sends_the_others(
    serve: Serve,
) -> None:
    provider = serve(accepted)
    good, bad = mails(2)
    results = list(SendGridMailer(SENDGRID_KEY, base_url=provider.url).send([unsafe(bad), good]))
    assert [r.status for r in results] == [SendStatus.REJECTED, SendStatus.SENT]
    assert "cannot be built" in results[0].detail
    assert [sendgrid_to(seen) for seen in provider.requests] == ["lead0@example.co.jp"]


def test_sendgrid_settings_are_checked_and_secrets_never_shown() -> None:
    with pytest.raises(InvalidInput, match="clear text") as raised:
        SendGridMailer(SENDGRID_KEY, base_url="http://api.sendgrid.com")
    assert raised.value.where == "SendGridMailer.base_url"
    with pytest.raises(InvalidInput) as raised:
        SendGridMailer("SG. with space secret")
    assert "secret" not in str(raised.value)
    with pytest.raises(InvalidInput, match="timeout"):
        SendGridMailer(SENDGRID_KEY, timeout=0)
    with pytest.raises(InvalidInput, match="query"):
        SendGridMailer(SENDGRID_KEY, base_url="https://api.sendgrid.com/?x=1")
    assert list(SendGridMailer(SENDGRID_KEY, base_url="http://localhost:1").send([])) == []


# --- Postmark ----------------------------------------------------------------------------------


def postmark_ok(seen: Seen) -> Answer:
    return answer(
        200,
        [
            {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{n}", "To": entry["To"]}
            for n, entry in enumerate(seen.json())
        ],
    )


def test_postmark_sends_a_batch_with_message_id_metadata_and_stream(serve: Serve) -> None:
    def respond(seen: Seen) -> Answer:
        codes = {"a@example.co.jp": 0, "b@example.co.jp": 406, "c@example.co.jp": 300}
        return answer(
            200,
            [
                {"ErrorCode": codes[entry["To"]], "Message": f"says {entry['To']}"}
                for entry in seen.json()
            ],
        )

    provider = serve(respond)
    batch = [mail(f"{name}@example.co.jp", key=f"enr-{name}/case/0") for name in "abc"]
    mailer = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url, message_stream="broadcast")
    results = mailer.send(batch)
    assert isinstance(results, list)
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.BOUNCED,
        SendStatus.REJECTED,
    ]
    assert "406" in results[1].detail and "says b@example.co.jp" in results[1].detail
    [seen] = provider.requests
    assert (seen.method, seen.path) == ("POST", "/email/batch")
    assert seen.headers["x-postmark-server-token"] == POSTMARK_TOKEN
    assert seen.headers["accept"] == "application/json"
    first = seen.json()[0]
    assert first["From"] == "株式会社ナーチャー <news@nurture.example.jp>"
    assert first["To"] == "a@example.co.jp"
    assert first["Subject"] == "【ご案内】導入事例のご紹介"
    assert "導入事例" in first["TextBody"] and first["HtmlBody"].startswith("<html>")
    assert first["MessageStream"] == "broadcast"
    assert first["Metadata"] == {"nk_send_key": "enr-a/case/0"}
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["Message-ID"] == batch[0].message_id
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://nurture.example.jp/u?t=")
    assert POSTMARK_TOKEN not in repr(mailer)


def test_postmark_splits_501_mails_into_two_requests_and_keeps_the_order(serve: Serve) -> None:
    provider = serve(postmark_ok)
    batch = mails(501)
    results = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send(batch)
    assert [len(seen.json()) for seen in provider.requests] == [500, 1]
    assert [r.key for r in results] == [m.key for m in batch]
    assert all(r.status is SendStatus.SENT for r in results)
    assert provider.requests[1].json()[0]["Metadata"] == {"nk_send_key": "enr-500/case/0"}


def test_postmark_429_defers_the_request_and_the_rest_without_sending_it(serve: Serve) -> None:
    provider = serve(
        lambda seen: answer(
            429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}, **{"Retry-After": "45"}
        )
    )
    results = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send(mails(501))
    assert len(provider.requests) == 1
    assert all(r.status is SendStatus.DEFERRED for r in results)
    assert all(r.retry_after == timedelta(seconds=45) for r in results)
    assert "Rate limit exceeded" in results[0].detail
    assert results[500].detail.startswith("not tried")


@pytest.mark.parametrize(
    ("status", "document", "expected"),
    [
        (500, {"ErrorCode": 0, "Message": "Internal error"}, SendStatus.DEFERRED),
        (503, None, SendStatus.DEFERRED),
        (422, {"ErrorCode": 300, "Message": "Invalid 'From' address"}, SendStatus.REJECTED),
        (422, {"ErrorCode": 100, "Message": "Maintenance"}, SendStatus.DEFERRED),
    ],
)
def test_postmark_maps_a_whole_request_refusal_to_every_mail_of_it(
    serve: Serve, status: int, document: object, expected: SendStatus
) -> None:
    provider = serve(lambda seen: answer(status, document))
    results = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send(mails(3))
    assert [r.status for r in results] == [expected] * 3
    if isinstance(document, dict):
        assert str(document["Message"]) in results[0].detail


@pytest.mark.parametrize(
    ("status", "document"),
    [
        (401, {"ErrorCode": 10, "Message": "Bad or missing API token"}),
        (422, {"ErrorCode": 10, "Message": "Bad or missing API token"}),
        (422, {"ErrorCode": 412, "Message": "Account is pending"}),
        (200, [{"ErrorCode": 10, "Message": "Bad token"}, {"ErrorCode": 10, "Message": "Bad"}]),
    ],
)
def test_postmark_refused_token_makes_the_mailer_unavailable(
    serve: Serve, status: int, document: object
) -> None:
    provider = serve(lambda seen: answer(status, document))
    with pytest.raises(MailerUnavailable) as raised:
        PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send(mails(2))
    assert POSTMARK_TOKEN not in str(raised.value)


def test_postmark_refusal_after_a_sent_request_defers_instead_of_losing_results(
    serve: Serve,
) -> None:
    def respond(seen: Seen) -> Answer:
        if len(seen.json()) == 500:
            return postmark_ok(seen)
        return answer(401, {"ErrorCode": 10, "Message": "Bad or missing API token"})

    provider = serve(respond)
    results = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send(mails(501))
    assert all(r.status is SendStatus.SENT for r in results[:500])
    assert results[500].status is SendStatus.DEFERRED
    assert "refused the server token" in results[500].detail
    assert len(provider.requests) == 2


def test_postmark_rejects_an_unbuildable_mail_in_its_place(serve: Serve) -> None:
    provider = serve(postmark_ok)
    first, second = mails(2)
    results = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url).send([first, unsafe(second)])
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.REJECTED]
    assert [entry["To"] for entry in provider.requests[0].json()] == ["lead0@example.co.jp"]


def test_postmark_unreachable_api_raises_and_an_empty_batch_opens_nothing() -> None:
    mailer = PostmarkMailer(POSTMARK_TOKEN, base_url=f"http://{LOCALHOST}:{free_port()}")
    with pytest.raises(MailerUnavailable, match="cannot connect"):
        mailer.send([mail()])
    assert mailer.send([]) == []
    with pytest.raises(InvalidInput, match="message stream"):
        PostmarkMailer(POSTMARK_TOKEN, message_stream="no spaces allowed")


# --- SES: the signer --------------------------------------------------------------------------


def test_sigv4_signs_the_aws_test_suite_get_vanilla_request() -> None:
    """AWS SigV4 test suite, get-vanilla: GET / with Host and X-Amz-Date only."""
    headers = sign(
        method="GET",
        path="/",
        headers={"Host": "example.amazonaws.com"},
        body=b"",
        access_key_id=AKID,
        secret_access_key=SECRET,
        region="us-east-1",
        service="service",
        when=datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc),
    )
    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_sigv4_signs_the_documented_iam_list_users_example() -> None:
    """The worked example of AWS's "Create a signed AWS API request" (IAM ListUsers): a query
    string and a Content-Type header."""
    headers = sign(
        method="GET",
        path="/",
        query="Action=ListUsers&Version=2010-05-08",
        headers={
            "Host": "iam.amazonaws.com",
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        },
        body=b"",
        access_key_id=AKID,
        secret_access_key=SECRET,
        region="us-east-1",
        service="iam",
        when=datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc),
    )
    assert headers["Authorization"].endswith(
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)


def verify_sigv4(seen: Seen, secret: str) -> re.Match[str]:
    """Check ``seen``'s signature the way AWS does, from what came over the wire; written
    apart from nurturekit's signer."""
    found = _AUTHORIZATION.fullmatch(seen.headers["authorization"])
    assert found is not None, seen.headers["authorization"]
    names = found["signed"].split(";")
    assert {"host", "x-amz-date", "content-type"} <= set(names)
    stamp = seen.headers["x-amz-date"]
    assert stamp[:8] == found["date"]
    sent = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - sent) < timedelta(minutes=5)
    path, _, query = seen.path.partition("?")
    canonical = "\n".join(
        [
            seen.method,
            urllib.parse.quote(path, safe="/-_.~"),
            query,
            "".join(f"{name}:{' '.join(seen.headers[name].split())}\n" for name in names),
            found["signed"],
            hashlib.sha256(seen.body).hexdigest(),
        ]
    )
    scope = f"{found['date']}/{found['region']}/{found['service']}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (found["date"], found["region"], found["service"], "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, found["signature"])
    return found


def ses_ok(seen: Seen) -> Answer:
    return answer(200, {"MessageId": "0100018f-ses-id"})


def ses_error(status: int, name: str, message: str, **headers: str) -> Callable[[Seen], Answer]:
    return lambda seen: answer(
        status,
        {"message": message},
        **{
            "X-Amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazonaws.sailfish/",
            **headers,
        },
    )


def ses_mailer(provider: Provider, **settings: Any) -> SesMailer:
    return SesMailer(AKID, SECRET, "ap-northeast-1", endpoint_url=provider.url, **settings)


# --- SES: the mailer --------------------------------------------------------------------------


def test_ses_sends_our_own_mime_bytes_signed_with_sigv4_and_the_key_as_a_tag(
    serve: Serve,
) -> None:
    provider = serve(ses_ok)
    batch = [mail(key="enr-1/case/0"), mail("suzuki@example.jp", key="enr_2/ケース/1")]
    mailer = ses_mailer(provider, configuration_set="marketing", session_token="FQoG//token==")
    results = list(mailer.send(batch))
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    assert "0100018f-ses-id" in results[0].detail
    for seen, sent in zip(provider.requests, batch, strict=True):
        assert (seen.method, seen.path) == ("POST", "/v2/email/outbound-emails")
        found = verify_sigv4(seen, SECRET)
        assert (found["akid"], found["region"], found["service"]) == (
            AKID,
            "ap-northeast-1",
            "ses",
        )
        assert "x-amz-security-token" in found["signed"].split(";")
        assert seen.headers["x-amz-security-token"] == "FQoG//token=="
        body = seen.json()
        raw = base64.b64decode(body["Content"]["Raw"]["Data"])
        assert raw == message_bytes(sent)
        assert f"Message-ID: {sent.message_id}".encode() in raw
        assert b"List-Unsubscribe: <https://nurture.example.jp/u?t=" in raw
        [tag] = body["EmailTags"]
        assert tag["Name"] == "nk_send_key"
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tag["Value"])
        assert decode_tag(tag["Value"]) == sent.key
        assert body["ConfigurationSetName"] == "marketing"
    assert SECRET not in repr(mailer) and "FQoG" not in repr(mailer)


def test_ses_a_tampered_request_would_not_verify(serve: Serve) -> None:
    """The server-side check above is real: the same request with another body fails it."""
    provider = serve(ses_ok)
    list(ses_mailer(provider).send([mail()]))
    [seen] = provider.requests
    seen.body = seen.body.replace(b"nk_send_key", b"nk_send_kez")
    with pytest.raises(AssertionError):
        verify_sigv4(seen, SECRET)


def test_ses_throttling_defers_with_retry_after_and_the_rest_without_a_request(
    serve: Serve,
) -> None:
    provider = serve(
        ses_error(
            429,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
            **{"Retry-After": "2"},
        )
    )
    results = list(ses_mailer(provider).send(mails(3)))
    assert all(r.status is SendStatus.DEFERRED for r in results)
    assert all(r.retry_after == timedelta(seconds=2) for r in results)
    assert "Maximum sending rate exceeded." in results[0].detail
    assert len(provider.requests) == 1


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (400, "MessageRejected", SendStatus.REJECTED),
        (400, "BadRequestException", SendStatus.REJECTED),
        (500, "InternalFailure", SendStatus.DEFERRED),
        (503, "ServiceUnavailable", SendStatus.DEFERRED),
    ],
)
def test_ses_maps_a_refusal_of_one_mail_and_goes_on_with_the_next(
    serve: Serve, status: int, name: str, expected: SendStatus
) -> None:
    refuse = ses_error(status, name, "Email address is not verified.")

    def respond(seen: Seen) -> Answer:
        return refuse(seen) if len(provider.requests) == 1 else ses_ok(seen)

    provider = serve(respond)
    results = list(ses_mailer(provider).send(mails(2)))
    assert [r.status for r in results] == [expected, SendStatus.SENT]
    assert name in results[0].detail and "not verified" in results[0].detail


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (403, "InvalidSignatureException"),
        (403, "UnrecognizedClientException"),
        (400, "AccountSuspendedException"),
        (400, "SendingPausedException"),
        (400, "MailFromDomainNotVerifiedException"),
        (401, ""),
    ],
)
def test_ses_account_or_credential_refusal_makes_the_mailer_unavailable(
    serve: Serve, status: int, name: str
) -> None:
    provider = serve(ses_error(status, name, f"refused, secret was {SECRET}"))
    results = ses_mailer(provider).send(mails(2))
    with pytest.raises(MailerUnavailable) as raised:
        next(iter(results))
    assert SECRET not in str(raised.value)
    assert name in str(raised.value)
    assert len(provider.requests) == 1


def test_ses_rejects_unbuildable_mails_in_their_place(serve: Serve) -> None:
    provider = serve(ses_ok)
    good, bad = mails(2)
    too_long = mail(key="キー" * 30)  # 180 bytes of UTF-8: 540 characters as a tag
    results = list(ses_mailer(provider).send([unsafe(bad), too_long, good]))
    assert [r.status for r in results] == [
        SendStatus.REJECTED,
        SendStatus.REJECTED,
        SendStatus.SENT,
    ]
    assert "256" in results[1].detail
    assert len(provider.requests) == 1


def test_ses_unreachable_endpoint_and_settings() -> None:
    mailer = SesMailer(AKID, SECRET, "us-east-1", endpoint_url=f"http://{LOCALHOST}:{free_port()}")
    with pytest.raises(MailerUnavailable, match="cannot connect"):
        mailer.send([mail()])
    assert str(SesMailer(AKID, SECRET, "eu-west-1").endpoint) == (
        "https://email.eu-west-1.amazonaws.com"
    )
    with pytest.raises(InvalidInput, match="region"):
        SesMailer(AKID, SECRET, "Tokyo")
    with pytest.raises(InvalidInput, match="clear text"):
        SesMailer(AKID, SECRET, "us-east-1", endpoint_url="http://email.example.com")
    with pytest.raises(InvalidInput) as raised:
        SesMailer(AKID, "has a space", "us-east-1")
    assert "has a space" not in str(raised.value)


@pytest.mark.parametrize(
    "key",
    ["enr-1/case/0", "a_b", "_", "--", "l1/3/thanks/1", "ケース:1", "x" * 256, "\U0001f600 e"],
)
def test_tag_values_are_tag_safe_and_read_back(key: str) -> None:
    value = encode_tag(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", value)
    assert decode_tag(value) == key


def test_tag_encoding_is_documented_and_one_to_one() -> None:
    assert encode_tag("enr-1/welcome:0") == "enr-1_2Fwelcome_3A0"
    assert encode_tag("a_b") == "a_5Fb"
    assert encode_tag("a_b") != encode_tag("a/b")
    for bad in ["a_", "a_4", "a_zz", "a_3a", "a b", "_41", "_FF", ""]:
        with pytest.raises(InvalidInput):
            decode_tag(bad)


# --- through the engine -------------------------------------------------------------------------


def downloaded(world: World, *lead_ids: str) -> None:
    for lead_id in lead_ids:
        world.lead(lead_id)
        world.did("download", lead_id=lead_id, type="whitepaper")


def outbox(storage: Storage) -> dict[str, tuple[SendStatus | None, int, datetime | None]]:
    return {e.mail.lead_id: (e.status, e.attempts, e.retry_at) for e in storage.outbox()}


def test_the_engine_sends_through_sendgrid_and_retries_a_rate_limited_send_when_told(
    serve: Serve,
) -> None:
    limited = {"l2@example.co.jp"}

    def respond(seen: Seen) -> Answer:
        if sendgrid_to(seen) in limited:
            return answer(
                429, {"errors": [{"message": "too many requests"}]}, **{"Retry-After": "120"}
            )
        return accepted(seen)

    provider = serve(respond)
    storage = InMemoryStorage()
    world = World(storage)
    world.engine.mailer = SendGridMailer(SENDGRID_KEY, base_url=provider.url)
    downloaded(world, "l1", "l2")
    start = world.clock.now()
    report = world.engine.run_due()
    assert (report.sent, report.deferred) == (1, 1)
    assert outbox(storage) == {
        "l1": (SendStatus.SENT, 1, None),
        "l2": (SendStatus.DEFERRED, 1, start + timedelta(seconds=120)),
    }
    keys = {e.mail.lead_id: e.mail.key for e in storage.outbox()}
    assert [seen.json()["custom_args"]["nk_send_key"] for seen in provider.requests] == [
        keys["l1"],
        keys["l2"],
    ]

    world.clock.advance(timedelta(seconds=60))
    assert world.engine.run_due().sent == 0  # not before its Retry-After
    limited.clear()
    world.clock.advance(timedelta(seconds=61))
    assert world.engine.run_due().sent == 1
    assert outbox(storage)["l2"][:2] == (SendStatus.SENT, 2)
    assert provider.requests[-1].json()["custom_args"]["nk_send_key"] == keys["l2"]


def test_the_engine_records_a_postmark_batch_and_bounces_an_inactive_recipient(
    serve: Serve,
) -> None:
    def respond(seen: Seen) -> Answer:
        return answer(
            200,
            [
                {"ErrorCode": 406, "Message": "inactive recipient"}
                if entry["To"] == "l2@example.co.jp"
                else {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1"}
                for entry in seen.json()
            ],
        )

    provider = serve(respond)
    storage = InMemoryStorage()
    world = World(storage)
    world.engine.mailer = PostmarkMailer(POSTMARK_TOKEN, base_url=provider.url)
    downloaded(world, "l1", "l2", "l3")
    report = world.engine.run_due()
    assert (report.sent, report.bounced) == (2, 1)
    assert len(provider.requests) == 1  # one batch request for the three
    statuses = {lead: status for lead, (status, _, _) in outbox(storage).items()}
    assert statuses == {"l1": SendStatus.SENT, "l2": SendStatus.BOUNCED, "l3": SendStatus.SENT}
    bounced = storage.get_lead("l2")
    assert bounced is not None and bounced.contactability.status is ContactStatus.BOUNCED
    sent_keys = {entry["Metadata"]["nk_send_key"] for entry in provider.requests[0].json()}
    assert sent_keys == {e.mail.key for e in storage.outbox()}


def test_sendgrid_tracking_of_its_own_is_a_flag() -> None:
    with pytest.raises(InvalidInput, match="provider_tracking"):
        SendGridMailer("SG.key", provider_tracking="yes")  # type: ignore[arg-type]
