"""A mailer that prints each mail to a text stream, decoded: for trying a program out at a
terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import attrs

from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates.mime import checked_headers, header_form

__all__ = ["ConsoleMailer", "readable"]

_RULE = "-" * 72


def readable(mail: OutgoingMail) -> str:
    """The mail as a person reads it: its headers in UTF-8, a blank line, the text body as
    written, and a line saying the HTML version's size when it has one."""
    headers, _ = checked_headers(mail)
    lines = [
        f"{name}: {header_form(name, text, seven_bit, True)}" for name, text, seven_bit in headers
    ]
    body = "\n".join(mail.text.splitlines())
    html = "" if mail.html is None else f"\n-- and an HTML version of {len(mail.html):,} characters"
    return "\n".join(lines) + f"\n\n{body}\n{html}"


@attrs.define
class ConsoleMailer:
    """Write each mail to ``stream`` (``sys.stdout`` when ``None``), as a person reads it.

    Each mail is preceded by a rule line naming its key, then come its headers (in UTF-8, not
    as RFC 2047 encoded words, so a Japanese subject reads as Japanese), a blank line and the
    text body as written (not base64); a mail with HTML ends with a line giving the HTML
    version's size. Every mail is reported :attr:`~nurturekit.messages.SendStatus.SENT`::

        mailer = ConsoleMailer()                  # or ConsoleMailer(io.StringIO())
        mailer.send([welcome_mail])               # prints the mail
    """

    #: Where to write; ``None`` means whatever ``sys.stdout`` is at the time of each send.
    stream: TextIO | None = None

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Write every mail, in order, and return one SENT result per mail."""
        # A mail whose headers are unsafe is REJECTED in its place, as by the other mailers.
        built = build_each(mails, readable)
        # Looked up per send, so redirect_stdout() and pytest's capsys see the output.
        stream = sys.stdout if self.stream is None else self.stream
        results: list[SendResult] = []
        for mail, text in built:
            if isinstance(text, SendResult):
                results.append(text)
                continue
            stream.write(f"{_RULE}\n-- mail {mail.key}\n{_RULE}\n{text}")
            if not text.endswith("\n"):
                stream.write("\n")
            results.append(SendResult(key=mail.key, status=SendStatus.SENT))
        stream.flush()
        return results
