"""Plain-JSON forms of the values a database store keeps: leads, lead state, enrolments, mail
and hand-offs.

Every ``*_to_json`` returns a ``str`` of compact JSON and the matching ``*_from_json`` reads it
back into an equal value; times are ISO 8601 with their UTC offset. Activities use
:meth:`nurturekit.Activity.to_dict`. A row that cannot be read raises
:class:`~nurturekit.errors.StorageError` naming what it was, rather than passing bad data on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from nurturekit.activity import Activity
from nurturekit.conditions.tally import Tally
from nurturekit.errors import NurtureError, StorageError
from nurturekit.handoff import Handoff
from nurturekit.lead import Consent, Contactability, Lead
from nurturekit.messages import OutgoingMail, Sender
from nurturekit.ports import LeadState
from nurturekit.scenario import Enrollment
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.scoring.values import FIT
from nurturekit.stages import StageMove

_M = TypeVar("_M")

__all__ = [
    "activity_columns",
    "activity_from_columns",
    "activity_from_json",
    "activity_to_json",
    "enrollment_from_json",
    "enrollment_to_json",
    "from_micros",
    "handoff_from_json",
    "handoff_to_json",
    "iso_time",
    "key_column",
    "lead_from_json",
    "lead_to_json",
    "mail_from_json",
    "mail_to_json",
    "micros",
    "state_from_head_json",
    "state_from_json",
    "state_head_to_json",
    "state_to_json",
]

_T = TypeVar("_T")


#: One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
#: A string as that encoder writes it.
_STRING: Callable[[str], str] = json.encoder.encode_basestring


#: The C encoder behind ``_ENCODE``, without the Python-level set-up ``encode`` does at every
#: call (no check for circular references: use it for values whose checks rule them out).
#: A CPython internal, kept because it pays: SQLite ``record_many`` of benchmarks/storage.py
#: (50,000 activities), 12 alternating runs on 2026-12-06: median 23,090 activities/s with it,
#: 21,896 without (+5.5%; the median of the paired ratios is +2.9%). Without it (another
#: Python), ``_ENCODE`` does the same.
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # not in the stubs
_C_ENCODE: Callable[[Any, int], Sequence[str]] | None = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, json.JSONEncoder().default, _STRING, None, ":", ",", False, False, True
    )
)


def _fast_encode(data: Any) -> str:
    """What ``_ENCODE`` writes for ``data``, which holds no cycle."""
    if _C_ENCODE is None:
        return _ENCODE(data)
    return "".join(_C_ENCODE(data, 0))


def _dumps(data: Any) -> str:
    return _ENCODE(data)


_UTC = timezone.utc
#: ``isoformat()`` of UTC times lately written: a time is usually written several times (an
#: activity's, then its score entry's and the state's last one), and ``isoformat`` costs as
#: much as a dozen dict look-ups. :class:`Memo`'s two generations, written out in
#: :func:`iso_time`: calling a Memo would add 60 ns to every time written, several per activity.
#: A process-wide memo, kept because it pays: SQLite ``record_many`` of benchmarks/storage.py
#: (50,000 activities), 5 alternating runs on 2026-12-06: median 22,858 activities/s with it,
#: 21,381 with ``isoformat()`` every time (+6.9%).
_ISO_SIZE = 8192
_iso_young: dict[datetime, str] = {}
_iso_old: dict[datetime, str] = {}


def iso_time(value: datetime) -> str:
    """``value.isoformat()``, remembered for plain ``datetime`` values in UTC (equal ones
    write the same text; a time in another zone equal to one of them would not)."""
    global _iso_young, _iso_old
    if value.tzinfo is not _UTC or type(value) is not datetime:
        return value.isoformat()
    text = _iso_young.get(value)
    if text is None:
        text = _iso_old.get(value)
        if text is None:
            text = value.isoformat()
        if len(_iso_young) >= _ISO_SIZE:
            _iso_old, _iso_young = _iso_young, {}
        _iso_young[value] = text
    return text


def _time(value: datetime | None) -> str | None:
    return None if value is None else iso_time(value)


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _reading(what: str, text: str | bytes, build: Callable[[Any], _T]) -> _T:
    try:
        return build(json.loads(text))
    except (NurtureError, ValueError, KeyError, TypeError, IndexError) as error:
        raise StorageError(
            f"stored {what} cannot be read ({type(error).__name__}: {error}); the row is "
            "damaged or was written by another program"
        ) from error


# --------------------------------------------------------------------------- leads


def lead_to_json(lead: Lead, *, with_id: bool = True) -> str:
    """The lead as compact JSON: ``id`` (unless not ``with_id``: a store whose row is keyed
    by it) and ``email`` always, every other field only when it holds something (no
    ``null``, no empty ``attributes``, no ``contactability`` while the lead is subscribed with
    no date or reason), so that a million leads do not each store the same empty fields.
    :func:`lead_from_json` reads this form and the older one with every field.
    """
    data: dict[str, Any] = {"id": lead.id} if with_id else {}
    data["email"] = lead.email
    if lead.name is not None:
        data["name"] = lead.name
    if lead.company is not None:
        data["company"] = lead.company
    if lead.attributes:
        data["attributes"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in lead.attributes.items()
        }
    if lead.source is not None:
        data["source"] = lead.source
    consent = lead.consent
    if consent is not None:
        data["consent"] = {
            "at": _time(consent.at),
            "method": consent.method,
            "wording": consent.wording,
        } | ({} if consent.source is None else {"source": consent.source})
    contact = lead.contactability
    if contact != _SUBSCRIBED:
        data["contactability"] = {
            "status": contact.status.value,
            "since": _time(contact.since),
            "reason": contact.reason,
        }
    if lead.owner is not None:
        data["owner"] = lead.owner
    if lead.created_at is not None:
        data["created_at"] = _time(lead.created_at)
    return _dumps(data)


#: A lead's contactability until something changes it: not written (see :func:`lead_to_json`).
_SUBSCRIBED = Contactability()


def _lead(data: dict[str, Any], lead_id: str | None = None) -> Lead:
    get = data.get
    consent = get("consent")
    contact = get("contactability")
    return Lead(
        id=data["id"] if lead_id is None else lead_id,
        email=data["email"],
        name=get("name"),
        company=get("company"),
        attributes=get("attributes") or {},
        source=get("source"),
        consent=None
        if consent is None
        else Consent(
            at=datetime.fromisoformat(consent["at"]),
            method=consent["method"],
            wording=consent["wording"],
            source=consent.get("source"),
        ),
        contactability=_SUBSCRIBED
        if contact is None
        else Contactability(
            status=contact["status"],
            since=_parse_time(contact["since"]),
            reason=contact["reason"],
        ),
        owner=get("owner"),
        created_at=_parse_time(get("created_at")),
    )


def lead_from_json(text: str | bytes, lead_id: str | None = None) -> Lead:
    """The lead :func:`lead_to_json` wrote as ``text``; ``lead_id`` when it was written
    without its id (a body that has one keeps it: the row's key and the id agree)."""
    if lead_id is None:
        return _reading("lead", text, _lead)
    return _reading("lead", text, lambda data: _lead(data, data.get("id", lead_id)))


def activity_to_json(activity: Activity) -> str:
    # What ``_dumps(activity.to_dict())`` writes, without building the dict.
    properties = activity.properties
    return "".join(
        (
            '{"lead_id":',
            _STRING(activity.lead_id),
            ',"kind":',
            _STRING(activity.kind),
            ',"at":"',
            iso_time(activity.at),
            '","properties":',
            _fast_encode(dict(properties)) if properties else "{}",
            ',"key":',
            _STRING(activity.key),
            "}",
        )
    )


def activity_from_json(text: str | bytes) -> Activity:
    return _reading("activity", text, Activity.from_dict)


_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)


def micros(value: datetime) -> int:
    """An aware time as whole microseconds since 1970-01-01 00:00 UTC, exactly (no float).

    >>> micros(datetime(2026, 4, 1, 9, 0, 0, 5, tzinfo=timezone.utc))
    1775034000000005
    """
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The UTC time :func:`micros` made ``value`` of.

    >>> from_micros(1775034000000005).isoformat()
    '2026-04-01T09:00:00.000005+00:00'
    """
    return _EPOCH + timedelta(microseconds=value)


#: An activity as columns: (key, lead_id, kind, at, properties).
ActivityColumns = tuple["str | bytes", str, str, int, "str | None"]

_HEX_KEY = re.compile("[0-9a-f]{32}")


def key_column(key: str) -> str | bytes:
    """An activity key as :func:`activity_columns` stores it: 16 bytes for 32 hex digits."""
    return bytes.fromhex(key) if len(key) == 32 and _HEX_KEY.fullmatch(key) else key


def activity_columns(activity: Activity) -> ActivityColumns:
    """An activity as a compact row: its key (one of 32 lowercase hex digits, as derived keys
    are, as its 16 bytes: every such key and only such a key is stored as bytes, so keys stay
    unique), lead and kind, its time as :func:`micros` and its properties as compact JSON,
    ``None`` when it has none. Read back with :func:`activity_from_columns`."""
    properties = activity.properties
    return (
        key_column(activity.key),
        activity.lead_id,
        activity.kind,
        micros(activity.at),
        _fast_encode(dict(properties)) if properties else None,
    )


def activity_from_columns(
    key: str | bytes, lead_id: str, kind: str, at: int, properties: str | None
) -> Activity:
    """The activity whose :func:`activity_columns` these are."""
    text = key.hex() if isinstance(key, bytes) else key
    try:
        return Activity(
            lead_id=lead_id,
            kind=kind,
            at=from_micros(at),
            properties=json.loads(properties) if properties else {},
            key=text,
        )
    except (NurtureError, ValueError, TypeError, OverflowError) as error:
        raise StorageError(
            f"stored activity {text!r} cannot be read ({type(error).__name__}: {error}); the "
            "row is damaged or was written by another program"
        ) from error


# --------------------------------------------------------------------------- state


def _read_contribution(row: list[Any]) -> Contribution:
    # A fit line is written without its axis, time, key and kind (see _fit_text); a line
    # without a time, key and kind without those.
    if len(row) == 3:
        rule, points, value = row
        return Contribution(rule, FIT, points, value, None, None, None)
    if len(row) == 4:
        rule, axis, points, value = row
        return Contribution(rule, axis, points, value, None, None, None)
    rule, axis, points, value, at, key, kind = row
    return Contribution(rule, axis, points, value, _parse_time(at), key, kind)


def _text(value: Any) -> str:
    """What :func:`_dumps` writes for ``value``; strings, ints and ``None`` without the
    encoder's per-call cost."""
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _fast_encode(value)


def _contribution_text(c: Contribution) -> str:
    rule, axis, points, value, at, key, kind = c
    if at is None and key is None and kind is None:  # a fit line: four items
        return f"[{_text(rule)},{_text(axis)},{_text(points)},{_text(value)}]"
    return (
        f"[{_text(rule)},{_text(axis)},{_text(points)},{_text(value)},"
        f"{'null' if at is None else _time_text(at)},{_text(key)},{_text(kind)}]"
    )


def _fit_text(c: Contribution) -> str:
    """A line of the card's ``fit``: ``[rule, points, value]`` when it is a fit line as the
    scoring model writes them (axis ``fit``, no time, key or kind), else in full."""
    rule, axis, points, value, at, key, kind = c
    if axis == FIT and at is None and key is None and kind is None:
        return f"[{_text(rule)},{_text(points)},{_text(value)}]"
    return _contribution_text(c)


def _time_text(t: datetime) -> str:
    return f'"{iso_time(t)}"'


def _move_text(m: StageMove) -> str:
    return (
        f'{{"lead_id":{_text(m.lead_id)},"source":{_text(m.source)},'
        f'"target":{_text(m.target)},"at":{_time_text(m.at)},"reason":{_text(m.reason)},'
        f'"manual":{_text(m.manual)}}}'
    )


def _joined(items: Sequence[_T], encode: Callable[[_T], str]) -> str:
    # An empty list (no fit rules, nothing refused, no idle clock) costs one test.
    return ",".join(map(encode, items)) if items else ""


def _state_text(state: LeadState, whole: bool, moves: bool) -> str:
    """The state as JSON; without ``card.entries``, ``refused``, ``seen`` and ``times`` unless
    ``whole``, and without ``moves`` unless ``moves`` (see :func:`state_head_to_json`).

    What holds nothing is left out (no engagement points, no last time or key, no level, a
    flag that is false):
    :func:`_state` reads a missing member as that default, and reads the older form that
    wrote every member too."""
    card = state.card
    parts = [
        # A head leaves the lead's id out: its row is keyed by it.
        f'{{"lead_id":{_text(state.lead_id)},"card":{{' if whole else '{"card":{',
        f'"fit":[{_joined(card.fit, _fit_text)}],"fit_total":{_text(card.fit_total)},',
    ]
    if whole:
        seen = ",".join(map(_STRING, sorted(card.seen))) if card.seen else ""
        parts.append(f'"entries":[{_joined(card.entries, _contribution_text)}],')
    if card.engagement_points:
        parts.append(f'"engagement_points":{_text(card.engagement_points)},')
    if whole:
        parts.append(f'"refused":[{_joined(card.refused, _contribution_text)}],"seen":[{seen}],')
    if card.last_at is not None:
        parts.append(f'"last_at":{_time_text(card.last_at)},')
    if card.last_key:
        parts.append(f'"last_key":{_text(card.last_key)},')
    if whole:
        parts.append(f'"times":[{_joined(card.times, _time_text)}],')
    parts[-1] = parts[-1][:-1]  # the last member's comma
    parts.append("}")
    if moves:
        parts.append(f',"moves":[{_joined(state.moves, _move_text)}]')
    if state.levels:
        parts.append(f',"levels":[{",".join(map(_STRING, sorted(state.levels)))}]')
    if state.with_sales:
        parts.append(',"with_sales":true')
    if state.disqualified:
        parts.append(',"disqualified":true')
    if state.qualified:
        parts.append(',"qualified":true')
    parts.append(_tally_text(state))
    parts.append("}")
    return "".join(parts)


def _tally_text(state: LeadState) -> str:
    """The state's tally as its last member; nothing when it has none (as before tallies)."""
    tally = state.tally
    return "" if tally is None else ',"tally":' + _dumps(tally.to_data())


def state_to_json(state: LeadState) -> str:
    """The whole state as compact JSON, in the form every stored state has had."""
    return _state_text(state, True, True)


def state_head_to_json(state: LeadState, *, with_moves: bool = False) -> str:
    """The state as :func:`state_to_json` writes it, less the lists that grow with the lead's
    history: the score card's ``entries``, ``refused``, ``seen`` and ``times``, and the
    stage ``moves`` (kept ``with_moves``, as schema version 4 of the SQLite store did), and
    less the lead's id, which keys the row.

    A store that keeps those apart (the SQLite store: a row per item) reads the state back
    with :func:`state_from_head_json`. Fit lines, totals, levels, flags and the tally stay.
    """
    return _state_text(state, False, with_moves)


def _state(
    data: dict[str, Any],
    entries: list[Contribution],
    refused: list[Contribution],
    seen: set[str],
    times: list[datetime],
    moves: list[StageMove],
    lead_id: str | None = None,
) -> LeadState:
    raw = data["card"]
    get = data.get
    if lead_id is None:
        lead_id = data["lead_id"]
    card = ScoreCard(
        lead_id=lead_id,
        fit=tuple(_read_contribution(c) for c in raw["fit"]),
        fit_total=raw["fit_total"],
        entries=entries,
        engagement_points=raw.get("engagement_points", 0),
        refused=refused,
        seen=seen,
        last_at=_parse_time(raw.get("last_at")),
        last_key=raw.get("last_key", ""),
        times=times,
    )
    return LeadState(
        lead_id=lead_id,
        card=card,
        moves=moves,
        levels=frozenset(get("levels", ())),
        with_sales=get("with_sales", False),
        # Written since schema 2; a state written before reads as not yet qualified.
        disqualified=get("disqualified", False),
        qualified=get("qualified", False),
        # A state written before tallies were kept has none: the engine counts the history
        # again once, the next time the lead is seen.
        tally=None if get("tally") is None else Tally.from_data(data["tally"]),
    )


def _whole_state(data: dict[str, Any]) -> LeadState:
    raw = data["card"]
    return _state(
        data,
        [_read_contribution(c) for c in raw["entries"]],
        [_read_contribution(c) for c in raw["refused"]],
        set(raw["seen"]),
        [datetime.fromisoformat(t) for t in raw["times"]],
        _moves(data),
    )


def _moves(data: dict[str, Any]) -> list[StageMove]:
    return [
        StageMove(
            lead_id=m["lead_id"],
            source=m["source"],
            target=m["target"],
            at=datetime.fromisoformat(m["at"]),
            reason=m["reason"],
            manual=m["manual"],
        )
        for m in data["moves"]
    ]


def state_from_json(text: str | bytes) -> LeadState:
    return _reading("lead state", text, _whole_state)


def state_from_head_json(
    text: str | bytes,
    *,
    lead_id: str,
    entries: list[Contribution],
    refused: list[Contribution],
    seen: set[str],
    times: list[datetime],
    moves: list[StageMove] | None,
) -> LeadState:
    """The state of ``lead_id`` whose :func:`state_head_to_json` is ``text``, with the lists
    given (the state keeps these objects); ``moves=None``: the text holds them
    (``with_moves``). A head written before heads left the id out has it: the same."""

    def read(data: dict[str, Any]) -> LeadState:
        held = _moves(data) if moves is None else moves
        return _state(data, entries, refused, seen, times, held, lead_id)

    return _reading("lead state", text, read)


# --------------------------------------------------------------------------- enrolments


def enrollment_to_json(e: Enrollment) -> str:
    return _dumps(
        {
            "id": e.id,
            "scenario": e.scenario,
            "lead_id": e.lead_id,
            "number": e.number,
            "status": e.status.value,
            "step": e.step,
            "due_at": _time(e.due_at),
            "entered_at": _time(e.entered_at),
            "ended_at": _time(e.ended_at),
            "reason": e.reason,
            "attempt": e.attempt,
        }
    )


def _enrollment(d: dict[str, Any]) -> Enrollment:
    return Enrollment(
        id=d["id"],
        scenario=d["scenario"],
        lead_id=d["lead_id"],
        number=d["number"],
        status=d["status"],
        step=d["step"],
        due_at=_parse_time(d["due_at"]),
        entered_at=datetime.fromisoformat(d["entered_at"]),
        ended_at=_parse_time(d["ended_at"]),
        reason=d["reason"],
        attempt=d["attempt"],
    )


def enrollment_from_json(text: str | bytes) -> Enrollment:
    return _reading("enrolment", text, _enrollment)


# --------------------------------------------------------------------------- mail


def mail_to_json(m: OutgoingMail) -> str:
    s = m.sender
    return _dumps(
        {
            "key": m.key,
            "message_id": m.message_id,
            "lead_id": m.lead_id,
            "to": m.to,
            "to_ascii": m.to_ascii,
            "sender": {
                "name": s.name,
                "address": s.address,
                "postal_address": s.postal_address,
                "unsubscribe_mailto": s.unsubscribe_mailto,
                "reply_to": s.reply_to,
            }
            # Only a sender with wordings of its own carries them (most have none).
            | ({"footers": dict(s.footers)} if s.footers else {}),
            "subject": m.subject,
            "text": m.text,
            "html": m.html,
            "headers": [list(h) for h in m.headers],
            "created_at": _time(m.created_at),
            "marketing": m.marketing,
            "scenario": m.scenario,
            "step": m.step,
            "enrollment_id": m.enrollment_id,
            "template": m.template,
        }
    )


def _mail(d: dict[str, Any]) -> OutgoingMail:
    return OutgoingMail(
        key=d["key"],
        message_id=d["message_id"],
        lead_id=d["lead_id"],
        to=d["to"],
        to_ascii=d["to_ascii"],
        sender=Sender(**d["sender"]),
        subject=d["subject"],
        text=d["text"],
        html=d["html"],
        headers=tuple((name, value) for name, value in d["headers"]),
        created_at=datetime.fromisoformat(d["created_at"]),
        marketing=d["marketing"],
        scenario=d["scenario"],
        step=d["step"],
        enrollment_id=d["enrollment_id"],
        template=d["template"],
    )


def mail_from_json(text: str | bytes) -> OutgoingMail:
    return _reading("outbox mail", text, _mail)


# --------------------------------------------------------------------------- hand-offs


def handoff_to_json(h: Handoff) -> str:
    return _dumps(
        {
            "id": h.id,
            "lead_id": h.lead_id,
            "at": _time(h.at),
            "definition": h.definition,
            "explanation": h.explanation,
            "score": h.score,
            "score_explanation": h.score_explanation,
            "recent": list(h.recent),
            "owner": h.owner,
            "status": h.status.value,
            "deadline": _time(h.deadline),
            "contacted_at": _time(h.contacted_at),
            "closed_at": _time(h.closed_at),
            "outcome_note": h.outcome_note,
            "escalated_at": _time(h.escalated_at),
            "notified_at": _time(h.notified_at),
            "escalation_notified_at": _time(h.escalation_notified_at),
            "notify_attempts": h.notify_attempts,
        }
    )


def _handoff(d: dict[str, Any]) -> Handoff:
    return Handoff(
        id=d["id"],
        lead_id=d["lead_id"],
        at=datetime.fromisoformat(d["at"]),
        definition=d["definition"],
        explanation=d["explanation"],
        score=d["score"],
        score_explanation=d["score_explanation"],
        recent=tuple(d["recent"]),
        owner=d["owner"],
        status=d["status"],
        deadline=_parse_time(d["deadline"]),
        contacted_at=_parse_time(d["contacted_at"]),
        closed_at=_parse_time(d["closed_at"]),
        outcome_note=d["outcome_note"],
        escalated_at=_parse_time(d["escalated_at"]),
        notified_at=_parse_time(d["notified_at"]),
        escalation_notified_at=_parse_time(d["escalation_notified_at"]),
        notify_attempts=d["notify_attempts"],
    )


def handoff_from_json(text: str | bytes) -> Handoff:
    return _reading("hand-off", text, _handoff)


class Memo(Generic[_M]):
    """Decoded values by the exact JSON text they were read from or written as.

    Keyed by the stored text itself, an entry can never be stale, whoever wrote the row and
    whatever was rolled back; only values nobody changes go in (leads, activities, enrolments,
    hand-offs, sends). Two generations of at most ``size`` entries each keep what was used
    lately, without the bookkeeping of a true LRU. The SQL stores share it.
    """

    def __init__(self, decode: Callable[[str], _M], size: int) -> None:
        self._decode = decode
        self._size = size
        self._young: dict[str, _M] = {}
        self._old: dict[str, _M] = {}

    def __call__(self, text: str) -> _M:
        value = self._young.get(text)
        if value is None:
            value = self._old.get(text)
            if value is None:
                value = self._decode(text)
            self.keep(text, value)
        return value

    def get(self, text: str) -> _M | None:
        """The value kept for ``text``, or ``None`` (nothing is decoded)."""
        value = self._young.get(text)
        return self._old.get(text) if value is None else value

    def keep(self, text: str, value: _M) -> None:
        if len(self._young) >= self._size:
            self._old = self._young
            self._young = {}
        self._young[text] = value

    def wrote(self, value: _M, text: str) -> str:
        """Keep ``value``, written as ``text``; return ``text``."""
        self.keep(text, value)
        return text
