"""A :class:`~nurturekit.scoring.ScoringModel` as a plain dict and back: the bodies of
:meth:`~nurturekit.scoring.ScoringModel.to_dict` and
:meth:`~nurturekit.scoring.ScoringModel.from_dict`, and the readers that check each key and name
its path inside the data (``_keys``, ``_get``, ``_list``, ``_datetime``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nurturekit.conditions import condition_from_dict
from nurturekit.errors import InvalidInput, InvalidScoringModel
from nurturekit.scoring.rules import Band, BehaviourRule, Cap, FitRule, HalfLife, IdleLoss, Level

if TYPE_CHECKING:
    from nurturekit.scoring.model import ScoringModel


def _model_to_dict(model: ScoringModel) -> dict[str, Any]:
    """What :meth:`ScoringModel.to_dict` returns."""
    out: dict[str, Any] = {
        "fit_rules": [r.to_dict() for r in model.fit_rules],
        "behaviour_rules": [r.to_dict() for r in model.behaviour_rules],
        "levels": [{"name": lv.name, "at_least": lv.at_least} for lv in model.levels],
        "bands": [
            {"name": b.name} | ({} if b.at_least is None else {"at_least": b.at_least})
            for b in model.bands
        ],
        "band_axis": model.band_axis,
    }
    if model.decay is not None:
        out["decay"] = model.decay.to_dict()
    if model.name:
        out["name"] = model.name
    return out


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Name ``where`` (the rule's place in the file) in an error its constructor raises with a
    field's name only (``points`` becomes ``scoring.behaviour_rules[1].points``)."""
    try:
        yield
    except InvalidInput as error:
        if error.where.startswith(where):
            raise
        raise InvalidScoringModel(f"{where}.{error.where}", error.message) from None


def _model_from_dict(cls: type[ScoringModel], data: Mapping[str, Any], path: str) -> ScoringModel:
    """What :meth:`ScoringModel.from_dict` returns: a ``cls`` read from ``data``."""
    _keys(
        data,
        path,
        ("name", "fit_rules", "behaviour_rules", "decay", "levels", "bands", "band_axis"),
    )
    fit = []
    for i, r in enumerate(_list(data, path, "fit_rules")):
        where = f"{path}.fit_rules[{i}]"
        _keys(r, where, ("name", "when", "points"))
        when = condition_from_dict(_get(r, where, "when"), f"{where}.when")
        with _at(where):
            fit.append(
                FitRule(name=_get(r, where, "name"), when=when, points=_get(r, where, "points"))
            )
    behaviour = []
    for i, r in enumerate(_list(data, path, "behaviour_rules")):
        where = f"{path}.behaviour_rules[{i}]"
        _keys(r, where, ("name", "when", "points", "cap", "active_from", "active_until"))
        cap = r.get("cap")
        if cap is not None:
            _keys(cap, f"{where}.cap", ("times", "per"))
            with _at(where):
                cap = Cap(times=_get(cap, f"{where}.cap", "times"), per=cap.get("per"))
        when = condition_from_dict(_get(r, where, "when"), f"{where}.when")
        with _at(where):
            behaviour.append(
                BehaviourRule(
                    name=_get(r, where, "name"),
                    when=when,
                    points=_get(r, where, "points"),
                    cap=cap,
                    active_from=_datetime(r.get("active_from"), f"{where}.active_from"),
                    active_until=_datetime(r.get("active_until"), f"{where}.active_until"),
                )
            )
    decay: HalfLife | IdleLoss | None = None
    raw = data.get("decay")
    if raw is not None:
        if "half_life" in raw:
            _keys(raw, f"{path}.decay", ("half_life",))
            decay = HalfLife(period=raw["half_life"])
        elif "idle_loss" in raw:
            _keys(raw, f"{path}.decay", ("idle_loss", "period", "floor"))
            decay = IdleLoss(
                points=raw["idle_loss"],
                period=_get(raw, f"{path}.decay", "period"),
                floor=raw.get("floor", 0),
            )
        else:
            raise InvalidScoringModel(
                f"{path}.decay",
                "expected {half_life = '30d'} or {idle_loss = 10, period = '30d'}",
            )
    levels = [
        Level(
            name=_get(lv, f"{path}.levels[{i}]", "name"),
            at_least=_get(lv, f"{path}.levels[{i}]", "at_least"),
        )
        for i, lv in enumerate(_list(data, path, "levels"))
    ]
    bands = [
        Band(name=_get(b, f"{path}.bands[{i}]", "name"), at_least=b.get("at_least"))
        for i, b in enumerate(_list(data, path, "bands"))
    ]
    return cls(
        fit_rules=fit,
        behaviour_rules=behaviour,
        decay=decay,
        levels=levels,
        bands=bands,
        band_axis=data.get("band_axis", "engagement"),
        name=data.get("name", ""),
    )


def _keys(data: Any, path: str, allowed: Sequence[str]) -> None:
    if not isinstance(data, Mapping):
        raise InvalidScoringModel(
            path, f"expected a table (dict), got {type(data).__name__} {data!r}"
        )
    for key in data:
        if key not in allowed:
            raise InvalidScoringModel(
                path,
                f"unknown key {key!r}; here the keys are {', '.join(repr(k) for k in allowed)}",
            )


def _get(data: Mapping[str, Any], path: str, key: str) -> Any:
    if key not in data:
        raise InvalidScoringModel(path, f"missing key {key!r}")
    return data[key]


def _list(data: Mapping[str, Any], path: str, key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple):
        raise InvalidScoringModel(f"{path}.{key}", f"expected a list, got {value!r}")
    return list(value)


def _datetime(value: Any, path: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidScoringModel(
            path, f"expected an ISO 8601 time such as '2026-04-01T00:00:00+09:00', got {value!r}"
        ) from None
