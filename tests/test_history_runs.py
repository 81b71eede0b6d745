"""History rows sorted by lead beyond memory (``nurturekit._history_runs``): the same order as
sorting them all at once, each lead's rows in the file's order; the file's order given back;
keys given to two leads' rows found across parts; the temporary files deleted."""

from __future__ import annotations

import os
import random
from datetime import datetime, timedelta, timezone

import pytest

from nurturekit import Activity
from nurturekit._history_runs import HistoryRun, Row

AT = datetime(2026, 4, 1, 9, tzinfo=timezone.utc)


def _rows(count: int, seed: int, leads: int = 40) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for line in range(2, count + 2):
        properties = {"page": rng.choice(["product", "blog"]), "n": line} if line % 3 else {}
        rows.append(
            (
                line,
                Activity(
                    lead_id=f"l{rng.randrange(leads):03d}",
                    kind=rng.choice(["page_view", "email_open"]),
                    at=AT + timedelta(minutes=rng.randrange(10_000)),
                    properties=properties,
                ),
            )
        )
    return rows


@pytest.mark.parametrize("size", [1, 7, 100, 1000])
def test_by_lead_is_a_stable_sort_and_in_file_order_gives_the_rows_back(size: int) -> None:
    rows = _rows(500, seed=size)
    with HistoryRun(size) as run:
        for row in rows:
            run.add(row)
        assert run.count == len(rows)
        assert run.spilled is (size < len(rows))
        assert list(run.by_lead()) == sorted(rows, key=lambda row: row[1].lead_id)
        assert list(run.in_file_order()) == rows
        assert not run.shares_a_key()
    # What comes back is equal in every field, the time zone and the properties' types too.
    with HistoryRun(3) as run:
        for row in rows[:10]:
            run.add(row)
        for (_, back), (_, given) in zip(run.in_file_order(), rows[:10], strict=True):
            assert back.at.tzinfo is timezone.utc
            assert dict(back.properties) == dict(given.properties)
            assert back.key == given.key
            with pytest.raises(TypeError):
                back.properties["page"] = "x"  # type: ignore[index]


def test_a_run_of_exactly_size_rows_stays_in_memory() -> None:
    rows = _rows(10, seed=1)
    with HistoryRun(10) as run:
        for row in rows:
            run.add(row)
        assert not run.spilled and run.in_memory() == rows
        run.add((99, rows[0][1]))
        assert run.spilled and run.in_memory() is None


@pytest.mark.parametrize(("first", "second"), [(0, 1), (0, 9), (4, 5)])
def test_a_key_given_to_two_leads_is_found_in_any_two_parts(first: int, second: int) -> None:
    rows = [
        (line, Activity(lead_id=f"l{line % 4}", kind="email_open", at=AT, key=f"k{line}"))
        for line in range(10)
    ]
    rows[second] = (second, Activity(lead_id="lx", kind="email_open", at=AT, key=f"k{first}"))
    for size in (2, 3, 100):
        with HistoryRun(size) as run:
            for row in rows:
                run.add(row)
            assert run.shares_a_key(), (size, first, second)


def test_a_key_repeated_by_one_lead_is_not_shared() -> None:
    with HistoryRun(2) as run:
        for line in range(6):
            run.add((line, Activity(lead_id="l1", kind="email_open", at=AT, key="same")))
        assert not run.shares_a_key()


def test_two_temporary_files_hold_every_part_and_close_deletes_them() -> None:
    before = _open_files()
    run = HistoryRun(5)
    for row in _rows(50, seed=3):
        run.add(row)
    assert run.spilled and len(_open_files() - before) == 2  # 9 parts so far
    assert len(list(run.by_lead())) == 50
    run.close()
    assert _open_files() == before
    run.close()  # twice is fine


def _open_files() -> set[str]:
    """The files this process has open: a temporary file made without a name (Linux's
    ``O_TMPFILE``) shows as ``…/#inode (deleted)``."""
    folder = f"/proc/{os.getpid()}/fd"
    found = set()
    for name in os.listdir(folder):
        try:
            found.add(f"{name}:{os.readlink(os.path.join(folder, name))}")
        except OSError:
            continue
    return found
