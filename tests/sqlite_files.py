"""SQLite files as older nurturekit versions wrote them, for the migration tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nurturekit import Activity
from nurturekit.storage.codec import activity_to_json
from nurturekit.storage.sqlite_rows import utc_stamp


def add_activity_as_before_7(path: Path, activity: Activity) -> None:
    """Write an activity's row as schema versions 1 to 6 did: a text time, the whole body."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO activities (key, lead_id, kind, at, body) VALUES (?, ?, ?, ?, ?)",
            (
                activity.key,
                activity.lead_id,
                activity.kind,
                utc_stamp(activity.at),
                activity_to_json(activity),
            ),
        )
    conn.close()
