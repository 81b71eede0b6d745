"""A mailer that prints each message to a text stream: for trying a program out at a terminal."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from email.policy import SMTPUTF8
from typing import TextIO

import attrs

from nurturekit.mail._build import build_each
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates import build_message

__all__ = ["ConsoleMailer"]

_RULE = "-" * 72
# UTF-8 headers instead of encoded words, and the terminal's line ends.
_READABLE = SMTPUTF8.clone(linesep="\n")


@attrs.define
class ConsoleMailer:
    """Write each message, headers and body, to ``stream`` (``sys.stdout`` when ``None``).

    Each message is preceded by a rule line naming its key. Headers are written in UTF-8
    rather than as RFC 2047 encoded words, so a Japanese subject reads as Japanese. Every mail
    is reported :attr:`~nurturekit.messages.SendStatus.SENT`::

        mailer = ConsoleMailer()                  # or ConsoleMailer(io.StringIO())
        mailer.send([welcome_mail])               # prints the message
    """

    #: Where to write; ``None`` means whatever ``sys.stdout`` is at the time of each send.
    stream: TextIO | None = None

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        """Write every mail, in order, and return one SENT result per mail."""
        # A mail that cannot be built is REJECTED in its place.
        built = build_each(mails, build_message)
        # Looked up per send, so redirect_stdout() and pytest's capsys see the output.
        stream = sys.stdout if self.stream is None else self.stream
        results: list[SendResult] = []
        for mail, message in built:
            if isinstance(message, SendResult):
                results.append(message)
                continue
            text = message.as_string(policy=_READABLE)
            stream.write(f"{_RULE}\n-- mail {mail.key}\n{_RULE}\n{text}")
            if not text.endswith("\n"):
                stream.write("\n")
            results.append(SendResult(key=mail.key, status=SendStatus.SENT))
        stream.flush()
        return results
