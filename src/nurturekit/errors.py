"""The errors nurturekit raises for bad input and refused operations.

Every error derives from :class:`NurtureError`. Errors about bad input also derive from
:class:`ValueError`, so code that already catches ``ValueError`` keeps working. A message says
what was wrong, where (the field, argument or dict path) and what would be right::

    >>> from nurturekit import Lead
    >>> Lead(id="l1", email="ann@@example.com")
    Traceback (most recent call last):
    ...
    nurturekit.errors.InvalidLead: Lead.email: 'ann@@example.com' has 2 '@' signs; ...
"""

from __future__ import annotations

__all__ = [
    "ActivityTooLarge",
    "ClockError",
    "InvalidActivity",
    "InvalidCondition",
    "InvalidLead",
    "InvalidScoringModel",
    "InvalidStageMachine",
    "NaiveDatetime",
    "NurtureError",
    "TooManyProperties",
    "TransitionNotAllowed",
    "UnknownStage",
]


class NurtureError(Exception):
    """Base of every error nurturekit raises on purpose."""


class InvalidInput(NurtureError, ValueError):
    """Base of the errors about a value the caller passed in.

    ``where`` names the field, argument or dict path that was wrong (``"Lead.email"``,
    ``"rules[2].when.any[0]"``); ``str(error)`` is a full sentence for a person.
    """

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class NaiveDatetime(InvalidInput):
    """A datetime without a time zone was given where nurturekit needs an aware one.

    nurturekit stores every time as timezone-aware UTC; a naive datetime is ambiguous (whose
    09:00?), so it is refused rather than guessed.
    """


class InvalidLead(InvalidInput):
    """A lead's field is missing, malformed or out of bounds (e-mail, id, consent, time zone …)."""


class InvalidActivity(InvalidInput):
    """An activity's kind, time or properties are malformed."""


class ActivityTooLarge(InvalidActivity):
    """An activity's properties are larger than the per-activity size limit."""


class TooManyProperties(InvalidActivity):
    """An activity has more properties than the per-activity limit."""


class InvalidCondition(InvalidInput):
    """A condition could not be built or read from a dict (unknown key, wrong type, bad range)."""


class InvalidScoringModel(InvalidInput):
    """A scoring model's rules, caps, decay, levels or bands are inconsistent."""


class InvalidStageMachine(InvalidInput):
    """A stage machine's definition breaks a rule checked when it is defined."""


class UnknownStage(InvalidInput):
    """A stage name that the stage machine does not define."""


class TransitionNotAllowed(NurtureError):
    """A manual move between two stages that the stage machine does not allow."""

    def __init__(self, source: str, target: str, allowed: tuple[str, ...]) -> None:
        self.source = source
        self.target = target
        self.allowed = allowed
        ways = ", ".join(repr(name) for name in allowed) if allowed else "none"
        super().__init__(
            f"cannot move from stage {source!r} to {target!r}: the stage machine has no such "
            f"transition; from {source!r} it allows: {ways}"
        )


class ClockError(InvalidInput):
    """A manual clock was set to a naive time or moved backwards."""
