"""Building each mail of a batch on its own: a mail that cannot be built is refused in its
place (``REJECTED``), and the others of the batch still go."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

from nurturekit.errors import NurtureError
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.templates import build_message


def build_each(
    mails: Sequence[OutgoingMail],
) -> list[tuple[OutgoingMail, EmailMessage | SendResult]]:
    """Each mail with its MIME message, or with the ``REJECTED`` result that replaces it."""
    built: list[tuple[OutgoingMail, EmailMessage | SendResult]] = []
    for mail in mails:
        try:
            built.append((mail, build_message(mail)))
        except NurtureError as error:
            refused = f"the message cannot be built: {error}"
            built.append(
                (mail, SendResult(key=mail.key, status=SendStatus.REJECTED, detail=refused))
            )
    return built
