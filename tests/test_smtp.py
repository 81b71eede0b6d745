"""SmtpMailer against real SMTP servers (aiosmtpd) on 127.0.0.1: no mocks of smtplib."""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from nurturekit import Lead
from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail import SmtpMailer
from nurturekit.messages import OutgoingMail, Sender, SendResult, SendStatus
from nurturekit.ports import Mailer
from nurturekit.templates import Template, compose

LOCALHOST = "127.0.0.1"

SENDER = Sender(
    name="株式会社ナーチャー",
    address="news@nurture.example.jp",
    postal_address="〒100-0001 東京都千代田区千代田1-1",
    unsubscribe_mailto="unsubscribe@nurture.example.jp",
)

CASE_STUDY = Template(
    name="case_study",
    subject="【ご案内】導入事例のご紹介",
    text=(
        "{{ name }} 様\n\nいつもお世話になっております。\n"
        "製造業のお客様が受注までの期間を三割短くした事例をご紹介します。\n"
    ),
    html="<html><body><p>{{ name }} 様</p><p>導入事例をご紹介します。</p></body></html>",
)


def send_all(mailer: SmtpMailer, mails: Sequence[OutgoingMail]) -> list[SendResult]:
    """Hand ``mails`` over and read every result (the mailer yields them one by one)."""
    return list(mailer.send(mails))


def case_study_mail(
    address: str = "tanaka@example.co.jp", *, key: str = "enr-1:case:0"
) -> OutgoingMail:
    lead = Lead(id="lead-1", email=address, name="田中 太郎")
    return compose(
        CASE_STUDY,
        lead,
        SENDER,
        key=key,
        created_at=datetime(2026, 4, 1, 0, 30, tzinfo=timezone.utc),
        unsubscribe_url=f"https://nurture.example.jp/unsubscribe?t={key.replace(':', '-')}",
    )


def batch(*addresses: str) -> list[OutgoingMail]:
    return [case_study_mail(address, key=f"enr-{n}:case:0") for n, address in enumerate(addresses)]


# --- the servers ----------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One message the server accepted, with the connection it came over."""

    envelope: Envelope
    session: Session
    tls: bool

    @property
    def message(self) -> EmailMessage:
        assert self.envelope.original_content is not None
        parsed = email.message_from_bytes(
            self.envelope.original_content, policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Recorder:
    """An aiosmtpd handler that records deliveries and answers RCPT and DATA as told.

    ``rcpt_replies`` and ``data_replies`` map a recipient to the reply the server gives it;
    ``mail_reply`` is the reply to every MAIL FROM when set.
    """

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    mail_reply: str | None = None
    drop_at_rcpt: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    quits: int = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == self.drop_at_rcpt:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        [recipient] = envelope.rcpt_tos
        if recipient in self.data_replies:
            return self.data_replies[recipient]
        assert server.transport is not None
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.deliveries.append(Delivery(envelope=envelope, session=session, tls=tls))
        return "250 2.0.0 Message accepted for delivery"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"

    @property
    def connections(self) -> int:
        # The sessions are kept alive by the deliveries, so their ids cannot be reused.
        return len({id(delivery.session) for delivery in self.deliveries})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        port: int = probe.getsockname()[1]
        return port


StartServer = Callable[..., int]


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Iterator[StartServer]:
    """Start an aiosmtpd server on 127.0.0.1 with a handler and Controller options; give its
    port. Every server is stopped when the test ends."""
    controllers: list[Controller] = []

    def start(handler: Recorder, **options: Any) -> int:
        # Another process may take the free port between the probe and the bind: try again.
        for attempt in range(5):
            port = free_port()
            controller = Controller(handler, hostname=LOCALHOST, port=port, **options)
            try:
                controller.start()
            except OSError:
                if attempt == 4:
                    raise
                continue
            controllers.append(controller)
            return port
        raise AssertionError("unreachable")

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCALHOST).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and auth_data == (b"news", b"s3cret-pass")
    # handled=False: aiosmtpd answers a failure with "535 5.7.8" itself.
    return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)


# --- delivery -------------------------------------------------------------------------------------


def test_a_japanese_marketing_mail_arrives_with_its_subject_body_and_unsubscribe_headers(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler)
    mail = case_study_mail()
    mailer: Mailer = SmtpMailer(LOCALHOST, port, security="none")

    [result] = send_all(mailer, [mail])

    assert result.status is SendStatus.SENT
    [delivery] = handler.deliveries
    assert delivery.envelope.mail_from == "news@nurture.example.jp"
    assert delivery.envelope.rcpt_tos == ["tanaka@example.co.jp"]
    assert "SMTPUTF8" not in delivery.envelope.mail_options
    message = delivery.message
    assert message["Subject"] == "【ご案内】導入事例のご紹介"
    plain = message.get_body(preferencelist=("plain",))
    assert isinstance(plain, EmailMessage)
    # Base64 text is in canonical CRLF form (RFC 2045); line by line it is the same text.
    assert plain.get_content().splitlines() == mail.text.splitlines()
    assert "製造業のお客様が受注までの期間を三割短くした事例をご紹介します。" in plain.get_content()
    sender = message["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("株式会社ナーチャー", SENDER.address)
    assert message["To"] == "tanaka@example.co.jp"
    assert message["Message-ID"] == mail.message_id
    assert message["List-Unsubscribe"] == (
        "<https://nurture.example.jp/unsubscribe?t=enr-1-case-0>, "
        "<mailto:unsubscribe@nurture.example.jp?subject=unsubscribe>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_non_ascii_mailbox_is_sent_with_smtputf8_and_an_ascii_one_without(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"), batch("たなか@例え.jp", "suzuki@例え.jp")
    )

    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    international, plain = handler.deliveries
    assert international.envelope.rcpt_tos == ["たなか@xn--r8jz45g.jp"]
    assert international.envelope.smtp_utf8
    assert "SMTPUTF8" in international.envelope.mail_options
    assert international.message["To"] == "たなか@xn--r8jz45g.jp"
    assert plain.envelope.rcpt_tos == ["suzuki@xn--r8jz45g.jp"]
    assert not plain.envelope.smtp_utf8


def test_a_non_ascii_mailbox_bounces_on_a_server_without_smtputf8(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler, enable_SMTPUTF8=False)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"),
        batch("たなか@例え.jp", "suzuki@example.co.jp"),
    )

    assert [r.status for r in results] == [SendStatus.BOUNCED, SendStatus.SENT]
    assert "SMTPUTF8" in results[0].detail
    assert [d.envelope.rcpt_tos for d in handler.deliveries] == [["suzuki@example.co.jp"]]


def test_a_batch_of_three_goes_over_one_connection_that_is_closed_with_quit(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler)
    mails = batch("a@example.com", "b@example.com", "c@example.com")

    results = send_all(SmtpMailer(LOCALHOST, port, security="none"), mails)

    assert [(r.key, r.status) for r in results] == [(m.key, SendStatus.SENT) for m in mails]
    assert [d.envelope.rcpt_tos for d in handler.deliveries] == [
        ["a@example.com"],
        ["b@example.com"],
        ["c@example.com"],
    ]
    assert handler.connections == 1
    assert handler.quits == 1


def test_each_batch_opens_its_own_connection_and_an_empty_batch_none(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler)
    mailer = SmtpMailer(LOCALHOST, port, security="none")

    send_all(mailer, batch("a@example.com"))
    send_all(mailer, batch("b@example.com"))
    assert send_all(mailer, []) == []

    assert handler.connections == 2
    assert handler.quits == 2


# --- refusals -------------------------------------------------------------------------------------


def test_a_550_recipient_bounces_and_a_451_one_is_deferred_while_the_others_are_sent(
    start_server: StartServer,
) -> None:
    handler = Recorder(
        rcpt_replies={
            "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected",
            "busy@example.com": "451 4.2.1 Mailbox busy, try again later",
        }
    )
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"),
        batch("a@example.com", "gone@example.com", "busy@example.com", "d@example.com"),
    )

    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.BOUNCED,
        SendStatus.DEFERRED,
        SendStatus.SENT,
    ]
    assert results[1].detail == (
        "recipient gone@example.com refused: 550 5.1.1 <gone@example.com>: "
        "Recipient address rejected"
    )
    assert results[2].detail == (
        "recipient busy@example.com refused: 451 4.2.1 Mailbox busy, try again later"
    )
    assert [d.envelope.rcpt_tos for d in handler.deliveries] == [
        ["a@example.com"],
        ["d@example.com"],
    ]
    assert handler.connections == 1


def test_a_message_refused_after_data_is_mapped_by_its_code(start_server: StartServer) -> None:
    handler = Recorder(
        data_replies={
            "spam@example.com": "554 5.7.1 Message rejected as spam",
            "slow@example.com": "452 4.3.1 Insufficient system storage",
        }
    )
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"),
        batch("spam@example.com", "slow@example.com", "c@example.com"),
    )

    assert [(r.status, r.detail) for r in results] == [
        (SendStatus.BOUNCED, "message refused: 554 5.7.1 Message rejected as spam"),
        (SendStatus.DEFERRED, "message refused: 452 4.3.1 Insufficient system storage"),
        (SendStatus.SENT, ""),
    ]


def test_a_sender_refused_for_now_defers_every_mail(start_server: StartServer) -> None:
    handler = Recorder(mail_reply="451 4.7.1 Greylisted, come back in 5 minutes")
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"), batch("a@example.com", "b@example.com")
    )

    assert [r.status for r in results] == [SendStatus.DEFERRED, SendStatus.DEFERRED]
    assert results[0].detail == (
        "sender news@nurture.example.jp refused: 451 4.7.1 Greylisted, come back in 5 minutes"
    )
    assert handler.deliveries == []


def test_a_sender_refused_for_good_still_defers_and_bounces_no_lead(
    start_server: StartServer,
) -> None:
    handler = Recorder(mail_reply="550 5.7.1 Sender address not allowed")
    port = start_server(handler)

    results = send_all(SmtpMailer(LOCALHOST, port, security="none"), batch("a@example.com"))

    assert [r.status for r in results] == [SendStatus.DEFERRED]
    assert results[0].detail == (
        "sender news@nurture.example.jp refused: 550 5.7.1 Sender address not allowed"
    )


def test_a_421_mid_batch_defers_that_mail_and_the_rest(start_server: StartServer) -> None:
    handler = Recorder(data_replies={"b@example.com": "421 4.3.2 Service shutting down"})
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"),
        batch("a@example.com", "b@example.com", "c@example.com"),
    )

    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.DEFERRED,
        SendStatus.DEFERRED,
    ]
    assert results[1].detail == "message refused: 421 4.3.2 Service shutting down"
    assert results[2].detail.startswith("not tried: the connection to 127.0.0.1:")
    assert len(handler.deliveries) == 1


def test_a_connection_dropped_mid_batch_defers_that_mail_and_the_rest(
    start_server: StartServer,
) -> None:
    handler = Recorder(drop_at_rcpt="b@example.com")
    port = start_server(handler)

    results = send_all(
        SmtpMailer(LOCALHOST, port, security="none"),
        batch("a@example.com", "b@example.com", "c@example.com"),
    )

    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.DEFERRED,
        SendStatus.DEFERRED,
    ]
    assert results[1].detail.startswith(f"connection to 127.0.0.1:{port} lost: ")
    assert "SMTPServerDisconnected" in results[1].detail
    assert results[2].detail.startswith("not tried:")
    assert [d.envelope.rcpt_tos for d in handler.deliveries] == [["a@example.com"]]


# --- TLS and AUTH ---------------------------------------------------------------------------------


def test_starttls_then_login_then_send(
    start_server: StartServer, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler = Recorder()
    port = start_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    mailer = SmtpMailer(
        LOCALHOST,
        port,
        security="starttls",
        username="news",
        password="s3cret-pass",
        ssl_context=client_tls,
    )

    [result] = send_all(mailer, [case_study_mail()])

    assert result.status is SendStatus.SENT
    [delivery] = handler.deliveries
    assert delivery.tls
    assert delivery.session.authenticated
    assert delivery.session.auth_data == LoginPassword(b"news", b"s3cret-pass")
    assert delivery.message["Subject"] == "【ご案内】導入事例のご紹介"


def test_a_refused_login_makes_the_mailer_unavailable_without_showing_the_password(
    start_server: StartServer, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler = Recorder()
    port = start_server(
        handler,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    mailer = SmtpMailer(
        LOCALHOST, port, username="news", password="wrong-pass", ssl_context=client_tls
    )

    with pytest.raises(MailerUnavailable) as caught:
        mailer.send([case_study_mail()])

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "login as 'news' failed" in message
    assert "535" in message
    assert "wrong-pass" not in message
    assert "wrong-pass" not in repr(mailer)
    assert handler.deliveries == []


def test_starttls_is_required_when_asked_for(start_server: StartServer) -> None:
    port = start_server(Recorder())  # no tls_context: the server offers no STARTTLS
    with pytest.raises(MailerUnavailable, match="does not offer STARTTLS"):
        SmtpMailer(LOCALHOST, port).send([case_study_mail()])


def test_an_untrusted_certificate_makes_the_mailer_unavailable(
    start_server: StartServer, server_tls: ssl.SSLContext
) -> None:
    port = start_server(Recorder(), tls_context=server_tls)
    # The default context trusts the system's CAs only, not the test CA.
    with pytest.raises(MailerUnavailable, match=r"STARTTLS.*CERTIFICATE_VERIFY_FAILED"):
        SmtpMailer(LOCALHOST, port).send([case_study_mail()])


def test_implicit_tls_from_the_first_byte(
    start_server: StartServer, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    handler = Recorder()
    port = start_server(handler, ssl_context=server_tls)
    mailer = SmtpMailer(LOCALHOST, port, security="tls", ssl_context=client_tls)

    results = send_all(mailer, batch("a@example.com", "b@example.com"))

    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    assert [d.tls for d in handler.deliveries] == [True, True]
    assert handler.connections == 1


# --- no server ------------------------------------------------------------------------------------


def test_a_server_that_is_not_listening_makes_the_mailer_unavailable() -> None:
    port = free_port()
    with pytest.raises(MailerUnavailable) as caught:
        SmtpMailer(LOCALHOST, port, security="none", timeout=5).send([case_study_mail()])
    assert f"cannot connect at 127.0.0.1:{port}" in str(caught.value)
    assert "ConnectionRefusedError" in str(caught.value)


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "where"),
    [
        ({"security": "ssl"}, "SmtpMailer.security"),
        ({"security": "STARTTLS"}, "SmtpMailer.security"),
        ({"port": 0}, "SmtpMailer.port"),
        ({"port": 65536}, "SmtpMailer.port"),
        ({"port": True}, "SmtpMailer.port"),
        ({"port": "587"}, "SmtpMailer.port"),
        ({"host": ""}, "SmtpMailer.host"),
        ({"host": "smtp.example.com\r\nRCPT"}, "SmtpMailer.host"),
        ({"timeout": 0}, "SmtpMailer.timeout"),
        ({"timeout": float("nan")}, "SmtpMailer.timeout"),
        ({"username": "news"}, "SmtpMailer.password"),
        ({"password": "s3cret-pass"}, "SmtpMailer.username"),
        ({"username": "", "password": "s3cret-pass"}, "SmtpMailer.username"),
        (
            {"security": "none", "username": "news", "password": "s3cret-pass"},
            "SmtpMailer.security",
        ),
        ({"ssl_context": "yes"}, "SmtpMailer.ssl_context"),
    ],
)
def test_bad_configuration_is_refused_naming_the_argument(
    arguments: dict[str, Any], where: str
) -> None:
    given: dict[str, Any] = {"host": "smtp.example.com", "port": 587, **arguments}
    host, port = given.pop("host"), given.pop("port")
    with pytest.raises(InvalidInput) as caught:
        SmtpMailer(host, port, **given)
    assert caught.value.where == where
    assert "s3cret-pass" not in str(caught.value)


def test_the_defaults_are_starttls_and_thirty_seconds() -> None:
    mailer = SmtpMailer("smtp.example.com", 587, username="news", password="s3cret-pass")
    assert (mailer.security, mailer.timeout) == ("starttls", 30.0)
    assert "s3cret-pass" not in repr(mailer)
