"""Building each mail of a batch on its own: a mail that cannot be built is refused in its
place (``REJECTED``), and the others of the batch still go."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from nurturekit.errors import NurtureError
from nurturekit.messages import OutgoingMail, SendResult, SendStatus

_Built = TypeVar("_Built")


def build_each(
    mails: Sequence[OutgoingMail],
    build: Callable[[OutgoingMail], _Built],
) -> list[tuple[OutgoingMail, _Built | SendResult]]:
    """Each mail with its MIME message (``build``: :func:`~nurturekit.templates.build_message`
    or :func:`~nurturekit.templates.wire.message_bytes`), or with the ``REJECTED`` result
    that replaces it."""
    built: list[tuple[OutgoingMail, _Built | SendResult]] = []
    for mail in mails:
        try:
            built.append((mail, build(mail)))
        except NurtureError as error:
            refused = f"the message cannot be built: {error}"
            built.append(
                (mail, SendResult(key=mail.key, status=SendStatus.REJECTED, detail=refused))
            )
    return built
