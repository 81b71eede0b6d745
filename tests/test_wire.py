"""The message bytes written directly (``nurturekit.templates.wire``), with the standard
library's parser as the referee: any subject, sender name and bodies read back the same, no
line passes 998 octets, the headers and decoded bodies are those of ``build_message``, and an
SMTP server on 127.0.0.1 receives exactly the bytes written."""

from __future__ import annotations

import email
import email.message
import email.policy
import smtplib

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_smtp import LOCALHOST, Recorder, StartServer, case_study_mail, start_server  # noqa: F401
from test_templates import SENDER, TANAKA, body, compose_for, display_name

from nurturekit.mail import OutboxMailer, SmtpMailer
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.templates import build_message
from nurturekit.templates.wire import message_bytes


def read(wire: bytes) -> email.message.EmailMessage:
    message = email.message_from_bytes(wire, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def canonical(text: str) -> str:
    """``text`` as a body reads back: every line break one ``\\n`` (CRLF, CR and LF alike),
    the last line ended too."""
    lines = text.encode("utf-8").splitlines() or [b""]
    return "".join(line.decode("utf-8") + "\n" for line in lines)


#: Japanese, emoji, a combining mark, accents, and plain ASCII.
letters = st.sampled_from(list("株式会社サンプル営業部のご案内 abcxyz,.()<>@é😀e\u0301-="))
breaks = st.sampled_from(["\r\n", "\r", "\n"])
words = st.text(letters, max_size=30) | st.builds(lambda n: "w" * n, st.integers(70, 1200))
bodies = st.lists(words | breaks, max_size=12).map("".join)
names = st.text(letters, min_size=1, max_size=60).map(lambda n: " ".join(n.split())).filter(bool)


def with_(mail: OutgoingMail, **changes: object) -> OutgoingMail:
    return attrs.evolve(mail, **changes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names, names, bodies, st.none() | bodies)
def test_any_mail_reads_back_the_same_and_keeps_lines_short(
    subject: str, name: str, text: str, html: str | None
) -> None:
    mail = with_(
        compose_for(),
        subject=subject,
        sender=attrs.evolve(SENDER, name=name),
        text=text,
        html=html,
    )
    wire = message_bytes(mail)
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
    # Subject and From fold at 78 (the words here are short enough to allow it), each line
    # after the first starting with white space.
    fields: list[list[bytes]] = []
    for line in wire.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            fields[-1].append(line)
        else:
            fields.append([line])
    for field in fields:
        if field[0].startswith((b"Subject:", b"From:")):
            assert all(len(line) <= 78 for line in field), field
    assert b"\r" not in wire.replace(b"\r\n", b"") and b"\n" not in wire.replace(b"\r\n", b"")
    message = read(wire)
    assert message["Subject"] == subject
    assert display_name(wire) == (name, SENDER.address)
    assert message["To"] == TANAKA.email
    assert body(message, "plain") == canonical(text)
    if html is None:
        assert message.get_content_type() == "text/plain"
    else:
        assert message.get_content_type() == "multipart/alternative"
        assert body(message, "html") == canonical(html)


def test_bodies_are_sent_as_they_are_quoted_printable_or_base64_as_fits() -> None:
    def encoding(text: str) -> str:
        part = read(message_bytes(with_(compose_for(), text=text, html=None)))
        return str(part["Content-Transfer-Encoding"])

    assert encoding("Hello,\nsee you on Monday.") == "7bit"
    assert encoding("Café au lait, crème brûlée: see you on Monday.") == "quoted-printable"
    assert encoding("x" * 1200) == "quoted-printable"  # ASCII, but a line too long to keep
    assert encoding("いつもお世話になっております。導入事例をご紹介します。") == "base64"


def test_a_body_holding_the_boundary_is_quoted() -> None:
    mail = compose_for()
    boundary = read(message_bytes(mail)).get_boundary()
    assert boundary is not None
    sneaky = with_(mail, text=f"--{boundary}\nnot a part\n--{boundary}--\n")
    message = read(message_bytes(sneaky))
    assert len(list(message.iter_parts())) == 2
    assert body(message, "plain") == sneaky.text


def headers_of(message: email.message.EmailMessage) -> dict[str, str]:
    skip = {"content-type", "content-transfer-encoding"}
    return {name: str(value) for name, value in message.items() if name.lower() not in skip}


def test_the_same_headers_and_bodies_as_build_message() -> None:
    japanese = compose_for()
    mails = [
        japanese,
        with_(japanese, html=None),
        with_(japanese, text="Hello,\r\nplain ASCII.\r\n", html="<p>Hello</p>"),
        with_(japanese, html=""),
        with_(japanese, to="田中@example.co.jp", to_ascii="田中@example.co.jp"),
    ]
    for mail in mails:
        ours = read(message_bytes(mail))
        theirs = read(build_message(mail).as_bytes())
        assert headers_of(ours) == headers_of(theirs)
        assert ours.get_content_type() == theirs.get_content_type()
        for subtype in ("plain", "html") if mail.html is not None else ("plain",):
            assert body(ours, subtype) == body(theirs, subtype)


def test_an_smtp_server_receives_exactly_the_bytes_written(
    start_server: StartServer,  # noqa: F811 (the fixture of test_smtp)
) -> None:
    recorder = Recorder()
    port = start_server(recorder)
    mail = compose_for()
    wire = message_bytes(mail)
    with smtplib.SMTP(LOCALHOST, port, timeout=10) as client:
        client.sendmail(mail.sender.address, [mail.to_ascii], wire)
    [delivery] = recorder.deliveries
    assert delivery.envelope.original_content == wire
    message = delivery.message
    assert message["Subject"] == mail.subject
    assert body(message, "plain") == canonical(mail.text)
    assert mail.html is not None and body(message, "html") == canonical(mail.html)


def test_smtp_mailer_sends_the_bytes_written(
    start_server: StartServer,  # noqa: F811 (the fixture of test_smtp)
) -> None:
    recorder = Recorder()
    port = start_server(recorder)
    mails = [case_study_mail(), case_study_mail("suzuki@example.co.jp", key="enr-2:case:0")]
    results = list(SmtpMailer(LOCALHOST, port, security="none").send(mails))
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    received = [d.envelope.original_content for d in recorder.deliveries]
    assert received == [message_bytes(mail) for mail in mails]


def test_the_outbox_keeps_the_mails_and_builds_each_message_when_read() -> None:
    mailer = OutboxMailer()
    mail = compose_for()
    bad = with_(mail, key="k2", subject="ok", headers=(("X-Bad", "a\r\nBcc: x@example.com"),))
    results = mailer.send([mail, bad])
    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.REJECTED]
    assert mailer.outbox == [mail] and len(mailer.messages) == 1
    first, again = mailer.messages[0], mailer.messages[0]
    assert first is not again and first["Message-ID"] == again["Message-ID"] == mail.message_id
    assert [m["Subject"] for m in mailer.messages] == [mail.subject]
    assert mailer.messages[:1][0]["To"] == TANAKA.email
    mailer.clear()
    assert mailer.messages == [] and len(mailer.messages) == 0
