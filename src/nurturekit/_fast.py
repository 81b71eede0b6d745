"""Values built on hot paths from parts that are already checked.

:func:`maker` generates code (``exec`` of a function it writes itself from the class's attrs
fields). It is kept because it pays on a named target: ``benchmarks/pipeline.py``'s in-memory
``record`` (100,000 leads × 3), 7 alternating runs on 2026-12-04: median 46,800 activities/s
with the views, scores, moves, enrolments and results built by makers, 32,900 with each
built by its attrs ``__init__`` (keyword arguments) instead (+42%).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import attrs

_T = TypeVar("_T")


def maker(cls: type[_T]) -> Callable[..., _T]:
    """A function that builds the frozen, slotted attrs class ``cls`` from its fields given in
    order, positionally, without its ``__init__``: for the values the engine makes for every
    recorded activity from parts it already checked (a stage the machine declared, a time
    already in aware UTC). No converters, no validators, no defaults: the caller passes every
    field, in the order of ``attrs.fields(cls)``.

    >>> @attrs.frozen
    ... class Point:
    ...     x: int
    ...     y: int
    >>> maker(Point)(1, 2)
    Point(x=1, y=2)
    """
    names = tuple(field.name for field in attrs.fields(cast(Any, cls)))
    if not names or "__slots__" not in cls.__dict__:
        raise TypeError(f"maker() needs a slotted attrs class with fields, not {cls!r}")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    made = _new(_cls)"]
    for index, name in enumerate(names):
        # The slot's own descriptor: a frozen class's __setattr__ refuses, and going through
        # object.__setattr__ looks the name up again on every call.
        slot = next(k.__dict__[name] for k in cls.__mro__ if name in k.__dict__)
        scope[f"_set{index}"] = slot.__set__
        lines.append(f"    _set{index}(made, {name})")
    lines.append("    return made")
    exec("\n".join(lines), scope)
    made: Callable[..., _T] = scope["make"]
    made.__qualname__ = made.__name__ = f"make_{cls.__name__}"
    return made
