"""The in-process mailers: the test outbox, the console and the ``.eml`` directory."""

from __future__ import annotations

import email
import email.policy
import io
import os
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest

from nurturekit import Lead
from nurturekit.errors import InvalidInput, MailerUnavailable
from nurturekit.mail import ConsoleMailer, EmlDirectoryMailer, OutboxMailer
from nurturekit.messages import OutgoingMail, Sender, SendStatus
from nurturekit.ports import Mailer
from nurturekit.templates import Template, build_message, compose

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
        unsubscribe_url="https://nurture.example.jp/unsubscribe?t=abc123",
    )


def text_of(message: EmailMessage) -> str:
    """The plain-text body with "\n" line ends (base64 text is CRLF inside, per RFC 2045)."""
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


# --- OutboxMailer ---------------------------------------------------------------------------------


def test_the_outbox_keeps_each_mail_and_its_real_mime_message_in_order() -> None:
    first = case_study_mail("tanaka@example.co.jp", key="enr-1:case:0")
    second = case_study_mail("suzuki@example.co.jp", key="enr-2:case:0")
    mailer: Mailer = OutboxMailer()

    results = mailer.send([first, second])

    assert [(r.key, r.status) for r in results] == [
        ("enr-1:case:0", SendStatus.SENT),
        ("enr-2:case:0", SendStatus.SENT),
    ]
    assert isinstance(mailer, OutboxMailer)
    assert mailer.outbox == [first, second]
    assert [m["To"] for m in mailer.messages] == ["tanaka@example.co.jp", "suzuki@example.co.jp"]
    assert mailer.messages[0]["Subject"] == "【ご案内】導入事例のご紹介"
    assert mailer.messages[0]["Message-ID"] == first.message_id
    assert mailer.messages[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_the_outbox_does_not_deduplicate_so_a_test_can_see_a_double_hand_over() -> None:
    mail = case_study_mail()
    mailer = OutboxMailer()
    mailer.send([mail])
    mailer.send([mail])
    assert [m.key for m in mailer.outbox] == [mail.key, mail.key]


def test_refused_addresses_bounce_or_defer_and_stay_out_of_the_outbox() -> None:
    mailer = OutboxMailer(
        refuse={"gone@example.com": SendStatus.BOUNCED, "Full@Example.com": "deferred"}
    )
    kept = case_study_mail("tanaka@example.co.jp", key="k-1")
    gone = case_study_mail("gone@example.com", key="k-2")
    full = case_study_mail("full@example.com", key="k-3")

    results = mailer.send([kept, gone, full])

    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.BOUNCED,
        SendStatus.DEFERRED,
    ]
    assert "gone@example.com" in results[1].detail
    assert mailer.outbox == [kept]
    assert len(mailer.messages) == 1


def test_a_refusal_matches_the_address_as_given_or_in_ascii_form() -> None:
    idn = case_study_mail("tanaka@例え.jp", key="k-1")
    assert OutboxMailer(refuse={"tanaka@例え.jp": SendStatus.BOUNCED}).send([idn])[0].status == (
        SendStatus.BOUNCED
    )
    assert OutboxMailer(refuse={idn.to_ascii: SendStatus.BOUNCED}).send([idn])[0].status == (
        SendStatus.BOUNCED
    )


@pytest.mark.parametrize("status", [SendStatus.SENT, "lost", 550])
def test_a_refusal_must_be_bounced_or_deferred(status: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        OutboxMailer(refuse={"ann@example.com": status})  # type: ignore[dict-item]
    assert caught.value.where == "OutboxMailer.refuse['ann@example.com']"
    assert "BOUNCED" in str(caught.value)


def test_clear_empties_the_outbox_and_the_messages() -> None:
    mailer = OutboxMailer()
    mailer.send([case_study_mail()])
    mailer.clear()
    assert mailer.outbox == []
    assert mailer.messages == []
    assert mailer.send([]) == []


# --- ConsoleMailer --------------------------------------------------------------------------------


def test_the_console_writes_each_message_after_a_rule_naming_its_key() -> None:
    stream = io.StringIO()
    first = case_study_mail("tanaka@example.co.jp", key="enr-1:case:0")
    second = case_study_mail("suzuki@example.co.jp", key="enr-2:case:0")

    results = ConsoleMailer(stream).send([first, second])

    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    output = stream.getvalue()
    assert output.count("-" * 72) == 4
    assert output.index("enr-1:case:0") < output.index("enr-2:case:0")
    # Headers are written as UTF-8, so the Japanese subject and sender read as they are.
    assert "Subject: 【ご案内】導入事例のご紹介" in output
    assert "株式会社ナーチャー" in output
    assert f"Message-ID: {second.message_id}" in output
    assert "\r" not in output
    # The body is the text as written, not base64, and the HTML version is mentioned.
    printed = output.split("-" * 72 + "\n")[2]
    head, _, body = printed.partition("\n\n")
    assert "Subject: 【ご案内】導入事例のご紹介" in head
    assert body.startswith(first.text)
    assert first.html is not None
    assert f"-- and an HTML version of {len(first.html):,} characters" in body


def test_the_console_writes_to_whatever_stdout_is_at_send_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mailer = ConsoleMailer()
    mailer.send([case_study_mail()])
    assert "【ご案内】導入事例のご紹介" in capsys.readouterr().out


# --- EmlDirectoryMailer ---------------------------------------------------------------------------


def eml_files(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_each_mail_becomes_one_eml_file_that_parses_back_as_the_same_message(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "outbox" / "2026-04"
    mail = case_study_mail()
    mailer = EmlDirectoryMailer(directory)

    [result] = mailer.send([mail])

    assert result.status is SendStatus.SENT
    path = mailer.path_for(mail)
    assert path.parent == directory
    assert eml_files(directory) == ["enr-1%3Acase%3A0.eml"]
    data = path.read_bytes()
    assert data.startswith(b"From:") and b"\r\n" in data
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "【ご案内】導入事例のご紹介"
    assert parsed["Message-ID"] == mail.message_id
    assert parsed["From"].addresses[0].display_name == "株式会社ナーチャー"
    assert parsed["To"] == "tanaka@example.co.jp"
    assert text_of(parsed) == mail.text
    html = parsed.get_body(preferencelist=("html",))
    assert isinstance(html, EmailMessage)
    assert html.get_content() == build_message(mail).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert parsed["List-Unsubscribe"] == build_message(mail)["List-Unsubscribe"]


def test_a_non_ascii_mailbox_is_written_with_utf8_headers(tmp_path: Path) -> None:
    mail = case_study_mail("たなか@例え.jp")
    mailer = EmlDirectoryMailer(tmp_path)
    mailer.send([mail])
    parsed = email.message_from_bytes(
        mailer.path_for(mail).read_bytes(), policy=email.policy.default
    )
    assert parsed["To"] == "たなか@xn--r8jz45g.jp"


def test_handing_over_the_same_key_twice_writes_the_file_once(tmp_path: Path) -> None:
    mail = case_study_mail()
    mailer = EmlDirectoryMailer(tmp_path)
    mailer.send([mail])
    path = mailer.path_for(mail)
    # Mark the file: a rewrite would lose the mark.
    path.write_bytes(path.read_bytes() + b"\r\n")
    marked = path.read_bytes()

    [again] = mailer.send([mail])

    assert again.status is SendStatus.SENT
    assert "already written" in again.detail
    assert path.read_bytes() == marked
    assert eml_files(tmp_path) == [path.name]


def test_keys_that_differ_only_in_unsafe_characters_get_different_files(tmp_path: Path) -> None:
    keys = ["a:b", "a/b", "a_b", "../up", ".hidden", "確認:1"]
    mailer = EmlDirectoryMailer(tmp_path)
    results = mailer.send([case_study_mail(key=key) for key in keys])
    assert [r.status for r in results] == [SendStatus.SENT] * len(keys)
    names = eml_files(tmp_path)
    assert len(names) == len(keys)
    assert all(name.endswith(".eml") and not name.startswith(".") for name in names)
    assert "a%3Ab.eml" in names
    assert "a%2Fb.eml" in names


def test_a_very_long_key_gets_a_short_file_name_that_stays_distinct(tmp_path: Path) -> None:
    first, second = "a:" * 99 + "1", "a:" * 99 + "2"
    mailer = EmlDirectoryMailer(tmp_path)
    mailer.send([case_study_mail(key=first), case_study_mail(key=second)])
    names = eml_files(tmp_path)
    assert len(names) == 2
    assert all(len(name.encode()) < 200 for name in names)


def test_a_failed_write_is_deferred_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    mailer = EmlDirectoryMailer(tmp_path)
    monkeypatch.setattr(os, "replace", disk_full)
    [result] = mailer.send([case_study_mail()])
    monkeypatch.undo()

    assert result.status is SendStatus.DEFERRED
    assert "No space left on device" in result.detail
    assert eml_files(tmp_path) == []


def test_no_temporary_files_are_left_after_a_batch(tmp_path: Path) -> None:
    mailer = EmlDirectoryMailer(tmp_path)
    mailer.send([case_study_mail(key=f"enr-{n}:case:0") for n in range(5)])
    assert eml_files(tmp_path) == [f"enr-{n}%3Acase%3A0.eml" for n in range(5)]


def test_a_directory_that_cannot_be_made_makes_the_mailer_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(MailerUnavailable, match="cannot create the directory"):
        EmlDirectoryMailer(blocker / "outbox").send([case_study_mail()])


def test_the_directory_must_be_a_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        EmlDirectoryMailer("")
    assert caught.value.where == "EmlDirectoryMailer.directory"
