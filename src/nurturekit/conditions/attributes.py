"""Attribute tests: :class:`AttributeEquals`, :class:`AttributeIn`, :class:`AttributeRange`,
:class:`AttributeExists`, :class:`AttributeContains` and their builder :func:`attr`; also the
value checks (``_scalar``, ``_same``, ``_shown`` …) the other tests share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from nurturekit.conditions.core import Condition, Explanation, View
from nurturekit.errors import InvalidCondition

Scalar = str | int | float | bool


def _key(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCondition("attribute", f"expected a non-empty attribute name, got {value!r}")
    return value


def _scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InvalidCondition(
        where, f"expected a string, number or boolean, got {type(value).__name__} {value!r}"
    )


def _scalars(values: Iterable[Any]) -> tuple[Scalar, ...]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidCondition("one_of", f"expected a list of values, got {values!r}")
    out = tuple(_scalar(v, f"one_of[{i}]") for i, v in enumerate(values))
    if not out:
        raise InvalidCondition("one_of", "needs at least one value")
    return out


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidCondition(where, f"expected a finite number, got {value!r}")
    return value


def _equals(value: Any) -> Scalar:
    return _scalar(value, "equals")


def _at_least(value: Any) -> float | None:
    return _number(value, "at_least")


def _below(value: Any) -> float | None:
    return _number(value, "below")


def _same(actual: Any, expected: Scalar) -> bool:
    # True == 1 in Python; a marketer's "employees is 1" must not match a flag that is True.
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    return bool(actual == expected)


def _shown(value: Any) -> str:
    if value is None:
        return "it is not set"
    if isinstance(value, tuple):
        return "it is " + ", ".join(repr(v) for v in value)
    return f"it is {value!r}"


class AttributeTest(Condition):
    """What the attribute tests share (:class:`AttributeEquals`, :class:`AttributeIn`,
    :class:`AttributeRange`, :class:`AttributeExists`, :class:`AttributeContains`): a ``key``
    they read, and an explanation with the value they saw. ``isinstance(c, AttributeTest)``
    tells a test of the lead's attributes from the other conditions."""

    __slots__ = ()
    key: str

    def explain(self, view: View) -> Explanation:
        return Explanation(
            held=self.evaluate(view), text=f"{self._text()} ({_shown(view.lead.get(self.key))})"
        )


@attrs.frozen(kw_only=True)
class AttributeEquals(AttributeTest):
    """The lead's attribute (or field: company, source, owner …) equals a value."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    value: Scalar = attrs.field(converter=_equals)

    def evaluate(self, view: View) -> bool:
        return _same(view.lead.get(self.key), self.value)

    def describe(self) -> str:
        return f"{self.key} is {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "equals": self.value}


@attrs.frozen(kw_only=True)
class AttributeIn(AttributeTest):
    """The lead's attribute is one of several values."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    values: tuple[Scalar, ...] = attrs.field(converter=_scalars)

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        return any(_same(actual, v) for v in self.values)

    def describe(self) -> str:
        return f"{self.key} is one of " + ", ".join(repr(v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "one_of": list(self.values)}


@attrs.frozen(kw_only=True)
class AttributeRange(AttributeTest):
    """The lead's numeric attribute lies in ``[at_least, below)``; either bound may be open."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    at_least: float | None = attrs.field(default=None, converter=_at_least)
    below: float | None = attrs.field(default=None, converter=_below)

    def __attrs_post_init__(self) -> None:
        if self.at_least is None and self.below is None:
            raise InvalidCondition(self.key, "a range needs 'at_least', 'below' or both")
        if self.at_least is not None and self.below is not None and self.at_least >= self.below:
            raise InvalidCondition(
                self.key,
                f"empty range: at_least {self.at_least} must be smaller than below {self.below}",
            )

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        if self.at_least is not None and actual < self.at_least:
            return False
        return not (self.below is not None and actual >= self.below)

    def describe(self) -> str:
        bounds = []
        if self.at_least is not None:
            bounds.append(f"at least {_num(self.at_least)}")
        if self.below is not None:
            bounds.append(f"below {_num(self.below)}")
        return f"{self.key} is " + " and ".join(bounds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attribute": self.key}
        if self.at_least is not None:
            out["at_least"] = self.at_least
        if self.below is not None:
            out["below"] = self.below
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@attrs.frozen(kw_only=True)
class AttributeExists(AttributeTest):
    """The lead has a value (not ``None``, not empty) for the attribute."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        return actual is not None and actual != "" and actual != ()

    def describe(self) -> str:
        return f"{self.key} is set"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "exists": True}


@attrs.frozen(kw_only=True)
class AttributeContains(AttributeTest):
    """The attribute, a text or a list, contains the value (case-insensitive for text)."""

    tag: ClassVar[str] = "attribute"
    key: str = attrs.field(converter=_key)
    value: str = attrs.field()

    @value.validator
    def _check(self, _: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidCondition("contains", f"expected a non-empty text, got {value!r}")

    def evaluate(self, view: View) -> bool:
        actual = view.lead.get(self.key)
        if isinstance(actual, str):
            return self.value.casefold() in actual.casefold()
        if isinstance(actual, tuple):
            return any(_same(item, self.value) for item in actual)
        return False

    def describe(self) -> str:
        return f"{self.key} contains {self.value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {"attribute": self.key, "contains": self.value}


class _AttributeRef:
    """Builder returned by :func:`attr`."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def eq(self, value: Scalar) -> Condition:
        """The attribute equals ``value``."""
        return AttributeEquals(key=self._key, value=value)

    def one_of(self, *values: Scalar) -> Condition:
        """The attribute is one of ``values``."""
        return AttributeIn(key=self._key, values=values)

    def at_least(self, value: float) -> Condition:
        """The attribute is a number ``>= value``."""
        return AttributeRange(key=self._key, at_least=value)

    def below(self, value: float) -> Condition:
        """The attribute is a number ``< value``."""
        return AttributeRange(key=self._key, below=value)

    def between(self, at_least: float, below: float) -> Condition:
        """The attribute is a number in ``[at_least, below)``."""
        return AttributeRange(key=self._key, at_least=at_least, below=below)

    def exists(self) -> Condition:
        """The attribute has a value."""
        return AttributeExists(key=self._key)

    def contains(self, value: str) -> Condition:
        """The attribute's text or list contains ``value``."""
        return AttributeContains(key=self._key, value=value)


def attr(key: str) -> _AttributeRef:
    """Start an attribute test: ``attr("industry").one_of("manufacturing", "it")``.

    ``key`` is a key of :attr:`Lead.attributes` or one of the lead's fields (``company``,
    ``source``, ``owner``, ``email``, ``name``).
    """
    return _AttributeRef(_key(key))
