"""How :class:`~nurturekit.storage.sqlite.SQLiteStorage` keeps a lead's state: one row of what
does not grow with the lead's history, and a row per item of what does, so that writing a
state costs what changed since the store last wrote or read it, not the history.

The row (``states``) holds :func:`~nurturekit.storage.codec.state_head_to_json`: fit lines,
totals, the newest activity's time and key, levels, flags and the tally. The parts that grow
are rows of their own (see schema versions 4 and 5 in :mod:`nurturekit.storage.sqlite_sql`):
the score card's ``entries`` and ``refused`` in ``state_lines`` (``part`` 0 and 1), its
``times`` in ``state_times`` and the stage ``moves`` in ``state_moves``, each with its position
in its list as ``seq``, and the keys of ``seen`` in ``state_seen``. So the row a batch rewrites
for each lead it touches stays small (some 200 bytes), and so do the pages it dirties.

A :class:`Written` remembers, for one lead, what the file holds of those parts as this store
last wrote or read them. The scoring model and the stage machine only append to these lists,
or replace a list object wholesale (after a late activity), so a list that is the same object
as last time, with the last item written still at its place, is written by appending its new
items; anything else is written again whole. (So an item replaced or removed in place
*before* the last one written, which neither of them does, would not be seen: put a new list
instead.) ``seen`` is a
set: the keys not written yet are added, and if any key written went missing, all of them are
written again. A :class:`Written` lives in the store's cache beside the state whose lists it
names, so it is dropped with the cache (when a transaction rolls back, when another connection
commits); without one, a state is written whole.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from nurturekit.errors import StorageError
from nurturekit.ports import LeadState
from nurturekit.scoring import Contribution
from nurturekit.stages import StageMove
from nurturekit.storage import sqlite_sql as q
from nurturekit.storage.codec import (
    iso_time,
    state_from_head_json,
    state_from_json,
    state_head_to_json,
)

__all__ = ["StateWrites", "Written", "move_states", "read_states"]

_T = TypeVar("_T")

#: ``state_lines.part`` of ``card.entries`` and of ``card.refused``.
ENTRIES = 0
REFUSED = 1

_parse_time = datetime.fromisoformat


class _Mark:
    """One list as written: the list object, how many of its items, and the last of them."""

    __slots__ = ("count", "items", "last")

    def __init__(self, items: Sequence[Any] | None) -> None:
        """``None``: not known, so the rows there may be are deleted and all written again."""
        self.items = items
        self.count = -1 if items is None else len(items)
        self.last = items[-1] if items else None

    def kept(self, items: Sequence[Any]) -> int | None:
        """How many of ``items`` the file holds already, in place, or ``None``: write them all
        again (after deleting the rows there are)."""
        count = self.count
        if not count:
            return 0  # no rows: nothing to keep, nothing to delete
        if items is not self.items or len(items) < count or items[count - 1] is not self.last:
            return None
        return count


class Written:
    """What the file holds of one lead's ``entries``, ``refused``, ``times``, ``moves`` and
    ``seen``, as this store last wrote or read them (see the module's docstring)."""

    __slots__ = ("entries", "keys", "moves", "refused", "times")

    def __init__(self, state: LeadState | None, known: bool = True) -> None:
        """What the file holds once ``state`` is written whole; with ``None``, what it holds of
        a lead that has no state row (no items), or not ``known``: anything."""
        if state is None:
            self.entries, self.refused, self.times, self.moves = (
                _Mark(() if known else None) for _ in range(4)
            )
            #: ``None``: not known.
            self.keys: set[str] | None = set() if known else None
            return
        card = state.card
        self.entries = _Mark(card.entries)
        self.refused = _Mark(card.refused)
        self.times = _Mark(card.times)
        self.moves = _Mark(state.moves)
        #: A copy of ``seen`` as written (the set itself may change after).
        self.keys = set(card.seen)

    @property
    def weight(self) -> int:
        """Items this holds that its state does not share: the copy of the keys."""
        return 0 if self.keys is None else len(self.keys)


def _line_row(lead_id: str, part: int, seq: int, c: Contribution) -> tuple[Any, ...]:
    rule, axis, points, value, at, key, kind = c
    at_text = None if at is None else iso_time(at)
    return (lead_id, part, seq, rule, axis, points, value, at_text, key, kind)


def _move_row(lead_id: str, seq: int, m: StageMove) -> tuple[Any, ...]:
    other = None if m.lead_id == lead_id else m.lead_id
    return (lead_id, seq, m.source, m.target, iso_time(m.at), m.reason, m.manual, other)


def _kept(mark: _Mark, items: Sequence[Any], clear: list[Any], key: tuple[Any, ...]) -> int:
    """How many of ``items`` the file holds already; when it holds none that can be kept, the
    delete of its rows, ``key``, is gathered in ``clear`` and 0 returned."""
    kept = mark.kept(items)
    if kept is None:
        clear.append(key)
        return 0
    return kept


class StateWrites:
    """The statements that write a batch of states, gathered so that each runs once, with
    ``executemany``: :meth:`add` each state, then :meth:`run`."""

    __slots__ = (
        "clear_lines",
        "clear_moves",
        "clear_seen",
        "clear_times",
        "lines",
        "moves",
        "moves_apart",
        "seen",
        "states",
        "times",
    )

    def __init__(self, *, moves_apart: bool = True) -> None:
        #: False: the stage moves stay in the state's row, as in schema version 4.
        self.moves_apart = moves_apart
        self.states: list[tuple[Any, ...]] = []
        self.clear_lines: list[tuple[str, int]] = []
        self.clear_times: list[tuple[str]] = []
        self.clear_moves: list[tuple[str]] = []
        self.clear_seen: list[tuple[str]] = []
        self.lines: list[tuple[Any, ...]] = []
        self.times: list[tuple[str, int, str]] = []
        self.moves: list[tuple[Any, ...]] = []
        self.seen: list[tuple[str, str]] = []

    def add(self, lead_id: str, state: LeadState, written: Written | None) -> Written:
        """Gather the writes of the items of ``state``, the state of ``lead_id``, given what
        the file holds of them (``None``: not known, so all are written again); return what
        the file will then hold.

        ``written`` is brought up to date in place and returned: if the writes then fail, the
        caller must drop it (the store drops its whole cache).
        """
        card = state.card
        if written is None:
            written = Written(None, known=False)
        for part, items, mark in (
            (ENTRIES, card.entries, written.entries),
            (REFUSED, card.refused, written.refused),
        ):
            kept = _kept(mark, items, self.clear_lines, (lead_id, part))
            if kept < len(items):
                self.lines.extend(
                    _line_row(lead_id, part, n, items[n]) for n in range(kept, len(items))
                )
        times = card.times
        kept = _kept(written.times, times, self.clear_times, (lead_id,))
        if kept < len(times):
            self.times.extend((lead_id, n, iso_time(times[n])) for n in range(kept, len(times)))
        moves = state.moves
        if self.moves_apart:
            kept = _kept(written.moves, moves, self.clear_moves, (lead_id,))
            if kept < len(moves):
                self.moves.extend(_move_row(lead_id, n, moves[n]) for n in range(kept, len(moves)))
        seen = card.seen
        keys = written.keys
        # Equal sets (the common case) compare in a C loop.
        if keys is None or len(seen) != len(keys) or seen != keys:
            new = seen if keys is None else seen - keys
            if keys is not None and len(seen) - len(new) == len(keys):
                self.seen.extend((lead_id, key) for key in new)  # every key written is there
                keys |= new
            else:
                self.clear_seen.append((lead_id,))
                self.seen.extend((lead_id, key) for key in seen)
                written.keys = set(seen)
        written.entries = _Mark(card.entries)
        written.refused = _Mark(card.refused)
        written.times = _Mark(times)
        written.moves = _Mark(moves)
        return written

    def head(self, lead_id: str, state: LeadState) -> None:
        """Gather the write of the row of ``state``, the state of ``lead_id``."""
        head = state_head_to_json(state, with_moves=not self.moves_apart)
        self.states.append((lead_id, head, state.with_sales, state.disqualified))

    def run(self, execute_many: Callable[[str, list[Any]], object]) -> None:
        """Run what was gathered: the deletes first, then the inserts."""
        for sql, rows in (
            (q.CLEAR_STATE_LINES, self.clear_lines),
            (q.CLEAR_STATE_TIMES, self.clear_times),
            (q.CLEAR_STATE_MOVES, self.clear_moves),
            (q.CLEAR_STATE_SEEN, self.clear_seen),
            (q.ADD_STATE_LINE, self.lines),
            (q.ADD_STATE_TIME, self.times),
            (q.ADD_STATE_MOVE, self.moves),
            (q.ADD_STATE_SEEN, self.seen),
            (q.PUT_STATE, self.states),
        ):
            if rows:
                execute_many(sql, rows)


def _read(what: str, build: Callable[[], _T]) -> _T:
    try:
        return build()
    except (ValueError, TypeError) as error:
        raise StorageError(
            f"stored {what} cannot be read ({type(error).__name__}: {error}); the row is "
            "damaged or was written by another program"
        ) from error


def read_states(
    fetch: Callable[[str, list[str]], list[Any]], lead_ids: list[str]
) -> dict[str, tuple[LeadState, Written]]:
    """The states of ``lead_ids`` from their rows, each with what the file holds of it, by
    lead; a lead without a state is left out. ``fetch`` runs a statement whose ``{marks}`` is
    the ``IN`` list of the ids it is given and returns its rows (all of them in one read
    snapshot): five statements for any number of leads."""
    heads = {lead_id: body for lead_id, body in fetch(q.GET_STATES, lead_ids)}
    if not heads:
        return {}
    ids = list(heads)
    lines: dict[str, tuple[list[Contribution], list[Contribution]]] = {
        lead_id: ([], []) for lead_id in ids
    }
    times: dict[str, list[datetime]] = {lead_id: [] for lead_id in ids}
    seen: dict[str, set[str]] = {lead_id: set() for lead_id in ids}
    moves: dict[str, list[StageMove]] = {lead_id: [] for lead_id in ids}

    def read_lines() -> None:
        # A rule, an axis and a kind are the same few strings on every line, and an activity's
        # time and key the same on each of its lines: one object each, not one per line.
        same: dict[str, str] = {}
        one = same.setdefault
        moments: dict[str, datetime] = {}
        for lead_id, part, rule, axis, points, value, at, key, kind in fetch(q.STATE_LINES, ids):
            if at is not None:
                at = moments.get(at) or moments.setdefault(at, _parse_time(at))
            line = (
                one(rule, rule),
                one(axis, axis),
                points,
                value,
                at,
                one(key, key),
                one(kind, kind),
            )
            lines[lead_id][part != ENTRIES].append(Contribution._make(line))

    def read_times() -> None:
        for lead_id, at in fetch(q.STATE_TIMES, ids):
            times[lead_id].append(_parse_time(at))

    def read_moves() -> None:
        for lead_id, source, target, at, reason, manual, other in fetch(q.STATE_MOVES, ids):
            moves[lead_id].append(
                StageMove(
                    lead_id=lead_id if other is None else other,
                    source=source,
                    target=target,
                    at=_parse_time(at),
                    reason=reason,
                    manual=bool(manual),
                )
            )

    which = _which(ids)
    _read(f"score lines of {which}", read_lines)
    _read(f"activity times of {which}", read_times)
    for lead_id, key in fetch(q.STATE_SEEN, ids):
        seen[lead_id].add(key)
    _read(f"stage moves of {which}", read_moves)
    states: dict[str, tuple[LeadState, Written]] = {}
    for lead_id, body in heads.items():
        entries, refused = lines[lead_id]
        state = state_from_head_json(
            body,
            lead_id=lead_id,
            entries=entries,
            refused=refused,
            seen=seen[lead_id],
            times=times[lead_id],
            moves=moves[lead_id],
        )
        states[lead_id] = (state, Written(state))
    return states


def _which(lead_ids: list[str]) -> str:
    """The leads named in an error: ``lead 'l1'``, or ``one of 40 leads ('l1', …)``."""
    if len(lead_ids) == 1:
        return f"lead {lead_ids[0]!r}"
    return f"one of {len(lead_ids)} leads ({lead_ids[0]!r}, …)"


def move_states(conn: sqlite3.Connection, version: int) -> None:
    """What the migration to ``version`` moves of the lead states in Python, in its
    transaction (see :mod:`nurturekit.storage.sqlite_sql`): nothing before version 4."""

    def query(sql: str, params: Sequence[Any]) -> list[Any]:
        return conn.execute(sql, params).fetchall()

    if version == 4:  # states stored whole in their bodies: their items to rows
        move_state_bodies(query, conn.executemany)
    elif version == 5:  # stage moves out of the states' rows
        move_state_moves(query, conn.executemany)


def move_state_bodies(
    query: Callable[[str, Sequence[Any]], list[Any]],
    execute_many: Callable[[str, list[Any]], object],
    page: int = 500,
) -> None:
    """Schema version 4: write every state stored whole in its body (the JSON of
    :func:`~nurturekit.storage.codec.state_to_json`) as its head (stage moves still in it)
    and its score card items' rows."""
    after = ""
    while True:
        rows = query(q.STATES_PAGE, (after, page))
        writes = StateWrites(moves_apart=False)
        for lead_id, body in rows:
            state = state_from_json(body)
            writes.add(lead_id, state, None)
            writes.head(lead_id, state)
        writes.run(execute_many)
        if len(rows) < page:
            return
        after = rows[-1][0]


def move_state_moves(
    query: Callable[[str, Sequence[Any]], list[Any]],
    execute_many: Callable[[str, list[Any]], object],
    page: int = 500,
) -> None:
    """Schema version 5: move the stage moves of every state out of its row into
    ``state_moves``, and write the row again without them."""
    after = ""
    while True:
        rows = query(q.STATES_PAGE, (after, page))
        moves: list[tuple[Any, ...]] = []
        bodies: list[tuple[str, str]] = []
        for lead_id, body in rows:
            state = state_from_head_json(
                body, lead_id=lead_id, entries=[], refused=[], seen=set(), times=[], moves=None
            )
            moves.extend(_move_row(lead_id, n, m) for n, m in enumerate(state.moves))
            bodies.append((state_head_to_json(state), lead_id))
        if moves:
            execute_many(q.ADD_STATE_MOVE, moves)
        if bodies:
            execute_many(q.SET_STATE_BODY, bodies)
        if len(rows) < page:
            return
        after = rows[-1][0]
