"""Attribute values that no condition of a program can match.

A lead whose ``job_level`` is ``"Department Head"`` where the program's rules test for
``"department_head"``, or whose ``employees`` is the text ``"abc"`` where they compare numbers,
is accepted, scores 0 for it and enters no segment that asks for it, without a word.
:class:`AttributeValueCheck` finds such values: built once from a :class:`~nurturekit.Program`,
it tells, for a lead, which of its attributes hold a value that no condition of the program on
that attribute could ever hold for.

    >>> from nurturekit import Lead
    >>> from nurturekit.programs import b2b_program
    >>> check = AttributeValueCheck(b2b_program())
    >>> lead = Lead(
    ...     id="l1",
    ...     email="ann@example.com",
    ...     attributes={"job_level": "Department Head", "employees": 500, "note": "vip"},
    ... )
    >>> [str(found) for found in check.unmatched(lead)]  # doctest: +NORMALIZE_WHITESPACE
    ["job_level 'Department Head': no rule of the program matches it (did you mean
    'department_head'?); the program's rules test job_level for 'executive', 'director',
    'department_head', 'section_manager', 'staff'"]

What counts:

- Every condition anywhere in the program: scoring rules, stage transitions, scenario
  triggers, targets, goals, exits and steps, the hand-off's MQL definitions and assignment
  rules. Inside ``all`` / ``any`` / ``not`` the attribute tests themselves (the leaves:
  :class:`~nurturekit.conditions.AttributeEquals`, ``AttributeIn``, ``AttributeRange``,
  ``AttributeExists``, ``AttributeContains`` and subclasses of them) are what count.
- A value is *matched* by a test when the test holds for a lead that has only that value
  (each test reads nothing but the one attribute, so this is exact): ``"Department Head"``
  is not matched by ``one_of = ["executive", "department_head"]``, and an industry the
  program does not list is reported too (it scores nothing: the report says so, for a person
  to judge). A range (``at_least`` / ``below``) matches every number, inside it or not: a
  threshold sorts numbers, and 10 employees below ``at_least = 50`` is its answer, not a value
  it cannot read. It matches no text, though: ``"abc"`` or the text ``"120"`` never compare
  as numbers (nor does ``True``, which is not the number 1).
- A test that is negated (under an odd number of ``not``), or that decides a scenario's
  :class:`~nurturekit.scenario.Branch` (its "no" path is the program's answer for every other
  value), matches every value: the program has said what happens to the values it does not
  name. So does ``exists``. An attribute with such a test is never reported.
- An attribute no condition mentions is never reported (it is there for templates, exports
  or people), nor are the lead's fields (``company``, ``source``, ``owner`` …).

This lives in a module of its own rather than in :mod:`nurturekit.importer` because it is a
question about a program and a lead, with no file in sight: an application that creates leads
from a web form, or a check before launch, asks it the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import attrs

from nurturekit.conditions import (
    AttributeContains,
    AttributeEquals,
    AttributeExists,
    AttributeIn,
    AttributeRange,
    AttributeTest,
    Condition,
    Not,
    View,
)
from nurturekit.lead import AttributeValue, Lead
from nurturekit.program import Program, _conditions_in
from nurturekit.scenario import Branch

__all__ = ["AttributeValueCheck", "UnmatchedValue", "unmatched_values"]

#: Distinct (attribute, value) answers one check keeps before it starts over: enough for the
#: values of any real column, bounded for a column of a million different numbers.
_CACHE_LIMIT = 100_000
#: Tested-for values shown in a reason before "…".
_SHOWN = 10
_NOW = datetime(2000, 1, 1, tzinfo=timezone.utc)  # attribute tests do not read the time
_FIELDS = frozenset({"id", "email", "name", "company", "source", "owner"})


@attrs.frozen
class UnmatchedValue:
    """An attribute value no condition of the program on that attribute can hold for.

    ``tested_for`` says what the program's conditions test the attribute for (``"'staff'"``,
    ``"a number at least 50"`` …, in the program's order); ``hint`` a likely cause, when one
    is seen (text where numbers are compared, a value spelt like one of those tested for).
    """

    attribute: str
    value: AttributeValue
    tested_for: tuple[str, ...]
    hint: str | None = None

    @property
    def reason(self) -> str:
        """Why the value is reported, in a sentence: ``"no rule of the program matches it;
        the program's rules test job_level for 'executive', …"``."""
        shown = ", ".join(self.tested_for[:_SHOWN])
        if len(self.tested_for) > _SHOWN:
            shown += ", …"
        hint = f" ({self.hint})" if self.hint else ""
        return (
            f"no rule of the program matches it{hint}; the program's rules test "
            f"{self.attribute} for {shown}"
        )

    def __str__(self) -> str:
        return f"{self.attribute} {self.value!r}: {self.reason}"


@attrs.define
class _Rules:
    """The attribute tests of a program on one attribute."""

    tests: list[AttributeTest] = attrs.Factory(list)
    #: A negated test, a branch's test or an ``exists``: every value is matched.
    open: bool = False


def _leaves(condition: Condition, negated: bool) -> Iterator[tuple[AttributeTest, bool]]:
    """The attribute tests inside ``condition``, each with whether it is negated; without
    recursing (conditions may nest deep)."""
    pending: list[tuple[Condition, bool]] = [(condition, negated)]
    while pending:
        node, flipped = pending.pop()
        if isinstance(node, AttributeTest):
            yield node, flipped
            continue
        inner = flipped ^ isinstance(node, Not)
        pending.extend((child, inner) for child in reversed(node.children()))


def _branch_conditions(program: Program) -> set[int]:
    return {
        id(step.when)
        for scenario in program.scenarios
        for step in scenario.steps
        if isinstance(step, Branch)
    }


def _tested_for(test: AttributeTest) -> tuple[str, ...]:
    if isinstance(test, AttributeEquals):
        return (repr(test.value),)
    if isinstance(test, AttributeIn):
        return tuple(repr(value) for value in test.values)
    if isinstance(test, AttributeRange):
        bounds = []
        if test.at_least is not None:
            bounds.append(f"at least {_number(test.at_least)}")
        if test.below is not None:
            bounds.append(f"below {_number(test.below)}")
        return ("a number " + " and ".join(bounds),)
    if isinstance(test, AttributeContains):
        return (f"a text containing {test.value!r}",)
    return (test.describe(),)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _folded(text: str) -> str:
    return "".join(char for char in text.casefold() if char.isalnum())


class AttributeValueCheck:
    """Which attribute values no condition of ``program`` can match (see the module's text).

    Build it once (it walks the program) and ask it for many leads: each distinct
    ``(attribute, value)`` is decided once and the answer kept, up to 100,000 answers, so
    asking costs a dict look-up per attribute. The answers live as long as the check: make
    one per import, not one for the process.
    """

    def __init__(self, program: Program) -> None:
        branches = _branch_conditions(program)
        rules: dict[str, _Rules] = {}
        for outer in _conditions_in(program):
            two_sided = id(outer) in branches
            for test, negated in _leaves(outer, False):
                key = test.key
                if key in _FIELDS:
                    continue
                found = rules.setdefault(key, _Rules())
                found.tests.append(test)
                if negated or two_sided or isinstance(test, AttributeExists):
                    found.open = True
        self._rules = rules
        # The attributes whose values can be unmatched: those with only one-sided tests.
        self._closed = {key: found.tests for key, found in rules.items() if not found.open}
        self._answers: dict[tuple[str, type, Any], bool] = {}

    @property
    def attributes(self) -> frozenset[str]:
        """The attributes some condition of the program tests (``exists`` and negated tests
        included)."""
        return frozenset(self._rules)

    def tested_for(self, attribute: str) -> tuple[str, ...]:
        """What the program's conditions test ``attribute`` for, in the program's order,
        each once: ``("'executive'", "'director'", …)`` or ``("a number at least 50", …)``;
        empty when none tests it."""
        found = self._rules.get(attribute)
        if found is None:
            return ()
        seen: dict[str, None] = {}
        for test in found.tests:
            seen.update(dict.fromkeys(_tested_for(test)))
        return tuple(seen)

    def matches(self, attribute: str, value: AttributeValue) -> bool:
        """Whether some condition of the program on ``attribute`` can hold for ``value``;
        true for an attribute no condition tests and for ``None`` (not set)."""
        tests = self._closed.get(attribute)
        if tests is None or value is None:
            return True
        answers = self._answers
        key = (attribute, type(value), value)
        try:
            return answers[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value: decide it without keeping the answer
            return self._decide(attribute, value, tests)
        if len(answers) >= _CACHE_LIMIT:
            answers.clear()
        answer = answers[key] = self._decide(attribute, value, tests)
        return answer

    def _decide(self, attribute: str, value: AttributeValue, tests: list[AttributeTest]) -> bool:
        if _is_number(value) and any(isinstance(test, AttributeRange) for test in tests):
            return True  # a number below a threshold is an answer, not a value it cannot read
        lead = Lead(id="x", email="x@example.com", attributes={attribute: value})
        view = View(lead=lead, now=_NOW)
        return any(test.evaluate(view) for test in tests)

    def unmatched(self, lead: Lead) -> tuple[UnmatchedValue, ...]:
        """The attributes of ``lead`` whose value no condition of the program can match,
        in the lead's order; empty when every value can be matched."""
        closed = self._closed
        return tuple(
            self.explain(key, value)
            for key, value in lead.attributes.items()
            if key in closed and not self.matches(key, value)
        )

    def explain(self, attribute: str, value: AttributeValue) -> UnmatchedValue:
        """The :class:`UnmatchedValue` for ``value`` of ``attribute`` (whether or not it is
        matched: ask :meth:`matches` first), with what the program tests it for and a hint."""
        tested_for = self.tested_for(attribute)
        return UnmatchedValue(attribute, value, tested_for, self._hint(attribute, value))

    def _hint(self, attribute: str, value: AttributeValue) -> str | None:
        found = self._rules.get(attribute)
        operands = [operand for test in found.tests for operand in _operands(test)] if found else []
        numbers = any(_is_number(operand) for operand in operands)
        texts = [operand for operand in operands if isinstance(operand, str)]
        if isinstance(value, str) and numbers and not texts:
            return "it is text, and the rules compare numbers: write digits only"
        if _is_number(value) and texts and not numbers:
            return "it is a number, and the rules test text"
        if not isinstance(value, str) or not texts:
            return None
        folded = _folded(value)
        close = [text for text in texts if _folded(text) == folded and text != value]
        if not close:
            close = difflib.get_close_matches(value, texts, n=1, cutoff=0.8)
        return f"did you mean {close[0]!r}?" if close else None


def _operands(test: AttributeTest) -> tuple[object, ...]:
    """The values ``test`` compares with: a number for a range (its bound), texts and numbers
    for equals and one of, a text for contains; none for exists."""
    if isinstance(test, AttributeEquals | AttributeContains):
        return (test.value,)
    if isinstance(test, AttributeIn):
        return test.values
    if isinstance(test, AttributeRange):
        return (test.at_least if test.at_least is not None else test.below,)
    return ()


def unmatched_values(program: Program, lead: Lead) -> tuple[UnmatchedValue, ...]:
    """The attributes of ``lead`` holding a value no condition of ``program`` can match:
    ``AttributeValueCheck(program).unmatched(lead)``. To check many leads, build one
    :class:`AttributeValueCheck` and ask it for each.

    >>> from nurturekit import Lead
    >>> from nurturekit.programs import b2b_program
    >>> lead = Lead(id="l1", email="ann@example.com", attributes={"employees": "abc"})
    >>> [found.hint for found in unmatched_values(b2b_program(), lead)]
    ['it is text, and the rules compare numbers: write digits only']
    """
    return AttributeValueCheck(program).unmatched(lead)
