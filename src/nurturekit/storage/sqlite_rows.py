"""The columns :class:`~nurturekit.storage.sqlite.SQLiteStorage` writes for a value: the one
stored form of a time (:func:`stamp`), and the rows of a send and of an enrolment."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from nurturekit._time import aware_utc
from nurturekit.errors import StorageError
from nurturekit.messages import OutgoingMail
from nurturekit.scenario import Enrollment
from nurturekit.storage import sqlite_sql as q
from nurturekit.storage.codec import (
    Memo,
    enrollment_to_json,
    iso_time,
    key_column,
    mail_to_json,
    micros,
)

__all__ = [
    "enrollment_row",
    "mail_row",
    "move_activities",
    "optional_stamp",
    "stamp",
    "utc_stamp",
]


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


def move_activities(conn: sqlite3.Connection) -> None:
    """The migration to schema version 7: each activity of the old table (``activities_6``:
    a text time and the whole activity as JSON) into the new one (its time as microseconds,
    its properties alone), with the same ``seq``, a page at a time; then the old table goes.
    A body that is not JSON is refused (:class:`~nurturekit.errors.StorageError` from the
    caller), and the file stays at version 6."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    times: Memo[int] = Memo(lambda text: micros(datetime.fromisoformat(text)), 4096)
    after = 0
    while True:
        rows = conn.execute(q.OLD_ACTIVITIES_PAGE, (after,)).fetchall()
        if not rows:
            break
        moved = []
        for seq, key, lead_id, kind, at, body in rows:
            try:
                properties = json.loads(body).get("properties")
                row = (
                    seq,
                    key_column(key),
                    lead_id,
                    kind,
                    times(at),
                    encode(properties) if properties else None,
                )
            except (ValueError, TypeError, AttributeError) as error:
                raise StorageError(
                    f"stored activity {key!r} cannot be read ({type(error).__name__}: {error})"
                ) from error
            moved.append(row)
        conn.executemany(q.MOVE_ACTIVITY, moved)
        after = rows[-1][0]
    conn.execute(q.DROP_OLD_ACTIVITIES)
