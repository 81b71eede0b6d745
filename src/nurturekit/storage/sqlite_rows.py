"""The columns :class:`~nurturekit.storage.sqlite.SQLiteStorage` writes for a value: the one
stored form of a time (:func:`stamp`), and the rows of a send and of an enrolment."""

from __future__ import annotations

from datetime import datetime

from nurturekit._time import aware_utc
from nurturekit.messages import OutgoingMail
from nurturekit.scenario import Enrollment
from nurturekit.storage.codec import enrollment_to_json, iso_time, mail_to_json

__all__ = ["enrollment_row", "mail_row", "optional_stamp", "stamp", "utc_stamp"]


def stamp(value: datetime, where: str) -> str:
    """The one stored form of a time: UTC, to the microsecond, fixed width."""
    return utc_stamp(aware_utc(value, where))


def utc_stamp(value: datetime) -> str:
    """:func:`stamp` of a time in UTC already: ``isoformat(timespec="microseconds")``, from
    the codec's remembered ``isoformat()`` (which leaves out a microsecond of 0)."""
    text = iso_time(value)
    return text if value.microsecond else f"{text[:19]}.000000{text[19:]}"


def optional_stamp(value: datetime | None, where: str) -> str | None:
    """:func:`stamp`, or ``None`` for ``None``."""
    return None if value is None else stamp(value, where)


def mail_row(mail: OutgoingMail) -> tuple[str, str, int, str, str]:
    """The row :data:`~nurturekit.storage.sqlite_sql.ADD_MAIL` writes for ``mail``."""
    created = stamp(mail.created_at, "OutgoingMail.created_at")
    return (mail.key, mail.lead_id, int(mail.marketing), created, mail_to_json(mail))


def enrollment_row(enrollment: Enrollment) -> tuple[str, str, str, str, str, str | None, str]:
    """The row :data:`~nurturekit.storage.sqlite_sql.PUT_ENROLLMENT` writes, its body last."""
    due = enrollment.due_at
    return (
        enrollment.id,
        enrollment.lead_id,
        enrollment.scenario,
        enrollment.status.value,
        stamp(enrollment.entered_at, "Enrollment.entered_at"),
        None if due is None else stamp(due, "Enrollment.due_at"),
        enrollment_to_json(enrollment),
    )
