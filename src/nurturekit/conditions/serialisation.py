"""Reading conditions back from plain dicts: :func:`condition_from_dict` and its ``_read_*``
readers, one per condition key; also ``_CHEAP``, the leaf classes a combination may test first
(it names every built-in test, as the readers do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nurturekit.conditions.activities import ANY_KIND, ActivityIs, Did
from nurturekit.conditions.attributes import (
    AttributeContains,
    AttributeEquals,
    AttributeExists,
    AttributeIn,
    AttributeRange,
)
from nurturekit.conditions.core import AllOf, Always, AnyOf, Condition, Never, Not
from nurturekit.conditions.state import (
    Consented,
    ContactStatusIs,
    InStage,
    InStageFor,
    LevelReached,
    ScoreRange,
    TemperatureIs,
)
from nurturekit.errors import InvalidCondition

_ATTRIBUTE_OPS = ("equals", "one_of", "at_least", "below", "exists", "contains")


def condition_from_dict(data: Mapping[str, Any], path: str = "condition") -> Condition:
    """Read a condition written by :meth:`Condition.to_dict` (or by hand, e.g. from TOML).

    Errors are :class:`InvalidCondition` naming the path inside the dict::

        {"all": [{"attribute": "employees", "at_least": 100},
                 {"did": "page_view", "where": {"page": "pricing"}, "within": "30d"}]}
    """
    if isinstance(data, Condition):
        return data
    if not isinstance(data, Mapping):
        raise InvalidCondition(path, f"expected a table (dict), got {type(data).__name__} {data!r}")
    try:
        return _read(data, path)
    except InvalidCondition as error:
        if error.where.startswith(path):
            raise
        raise InvalidCondition(f"{path}.{error.where}", error.message) from None


def _allowed(data: Mapping[str, Any], path: str, keys: Sequence[str]) -> None:
    for key in data:
        if key not in keys:
            raise InvalidCondition(
                path, f"unknown key {key!r}; here the keys are {', '.join(repr(k) for k in keys)}"
            )


def _read(data: Mapping[str, Any], path: str) -> Condition:
    tags = [key for key in _READERS if key in data]
    if len(tags) != 1:
        known = ", ".join(repr(k) for k in _READERS)
        if not tags:
            raise InvalidCondition(
                path,
                f"cannot tell what condition {dict(data)!r} is; it needs one of the keys {known}",
            )
        raise InvalidCondition(path, f"has several condition keys {tags}; use one per table")
    return _READERS[tags[0]](data, path)


def _read_list(data: Mapping[str, Any], path: str, tag: str) -> list[Condition]:
    _allowed(data, path, (tag,))
    items = data[tag]
    if not isinstance(items, list | tuple) or not items:
        raise InvalidCondition(
            f"{path}.{tag}", f"expected a non-empty list of conditions, got {items!r}"
        )
    return [condition_from_dict(item, f"{path}.{tag}[{i}]") for i, item in enumerate(items)]


def _read_all(data: Mapping[str, Any], path: str) -> Condition:
    return AllOf(parts=_read_list(data, path, "all"))


def _read_any(data: Mapping[str, Any], path: str) -> Condition:
    return AnyOf(parts=_read_list(data, path, "any"))


def _read_not(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("not",))
    return Not(part=condition_from_dict(data["not"], f"{path}.not"))


def _flag(data: Mapping[str, Any], path: str, tag: str) -> None:
    _allowed(data, path, (tag,))
    if data[tag] is not True:
        raise InvalidCondition(f"{path}.{tag}", f"write {tag} = true, got {data[tag]!r}")


def _read_always(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "always")
    return Always()


def _read_never(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "never")
    return Never()


def _read_attribute(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("attribute", *_ATTRIBUTE_OPS))
    key = data["attribute"]
    ops = [op for op in _ATTRIBUTE_OPS if op in data]
    if not ops:
        raise InvalidCondition(
            path,
            f"attribute test on {key!r} needs one of {', '.join(repr(o) for o in _ATTRIBUTE_OPS)}",
        )
    if set(ops) == {"at_least", "below"} or ops in (["at_least"], ["below"]):
        return AttributeRange(key=key, at_least=data.get("at_least"), below=data.get("below"))
    if len(ops) != 1:
        raise InvalidCondition(path, f"attribute test on {key!r} has several tests {ops}; use one")
    op = ops[0]
    value = data[op]
    if op == "equals":
        return AttributeEquals(key=key, value=value)
    if op == "one_of":
        return AttributeIn(key=key, values=value)
    if op == "contains":
        return AttributeContains(key=key, value=value)
    if value is not True:
        raise InvalidCondition(f"{path}.exists", f"write exists = true, got {value!r}")
    return AttributeExists(key=key)


def _kind_value(value: Any) -> Any:
    return None if value == ANY_KIND else value


def _read_did(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("did", "where", "at_least", "at_most", "within"))
    return Did(
        kinds=_kind_value(data["did"]),
        where=data.get("where"),
        at_least=data.get("at_least", 1),
        at_most=data.get("at_most"),
        within=data.get("within"),
    )


def _read_activity(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("activity", "where"))
    return ActivityIs(kinds=_kind_value(data["activity"]), where=data.get("where"))


def _read_score(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("score", "at_least", "below"))
    return ScoreRange(axis=data["score"], at_least=data.get("at_least"), below=data.get("below"))


def _read_level(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("level",))
    return LevelReached(name=data["level"])


def _read_temperature(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("temperature",))
    return TemperatureIs(names=data["temperature"])


def _read_stage(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("stage",))
    return InStage(names=data["stage"])


def _read_in_stage_for(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("in_stage_for",))
    return InStageFor(at_least=data["in_stage_for"])


def _read_consent(data: Mapping[str, Any], path: str) -> Condition:
    _flag(data, path, "consent")
    return Consented()


def _read_contactability(data: Mapping[str, Any], path: str) -> Condition:
    _allowed(data, path, ("contactability",))
    return ContactStatusIs(statuses=data["contactability"])


#: The leaf conditions :func:`_cheap` lets a combination test first.
_CHEAP = frozenset(
    (
        Always,
        Never,
        AttributeEquals,
        AttributeIn,
        AttributeRange,
        AttributeExists,
        AttributeContains,
        ActivityIs,
        ScoreRange,
        LevelReached,
        TemperatureIs,
        InStage,
        InStageFor,
        Consented,
        ContactStatusIs,
    )
)

_READERS = {
    "all": _read_all,
    "any": _read_any,
    "not": _read_not,
    "always": _read_always,
    "never": _read_never,
    "attribute": _read_attribute,
    "did": _read_did,
    "activity": _read_activity,
    "score": _read_score,
    "level": _read_level,
    "temperature": _read_temperature,
    "stage": _read_stage,
    "in_stage_for": _read_in_stage_for,
    "consent": _read_consent,
    "contactability": _read_contactability,
}
