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
    "ExpiredToken",
    "InvalidActivity",
    "InvalidCondition",
    "InvalidLead",
    "InvalidProgram",
    "InvalidScenario",
    "InvalidScoringModel",
    "InvalidStageMachine",
    "InvalidToken",
    "MailerUnavailable",
    "MissingPlaceholder",
    "NaiveDatetime",
    "NoOpenHandoff",
    "NurtureError",
    "StorageError",
    "TemplateError",
    "TooManyProperties",
    "TransitionNotAllowed",
    "UnknownLead",
    "UnknownStage",
    "UnsafeHeader",
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
    """A manual clock was set to a naive time or moved backwards, or a run was given a time
    outside the span nurturekit runs at (1900 to 9000), where waits and leases added to it
    could not be computed."""


class InvalidScenario(InvalidInput):
    """A scenario's definition is broken: unknown step targets, unreachable steps, a cycle with
    no wait, a send with no template … ``where`` names the scenario and the step."""


class InvalidProgram(InvalidInput):
    """The parts of a program do not fit together (a scenario names a template or a stage that
    the program does not have …)."""


class TemplateError(InvalidInput):
    """A template is malformed, or cannot be filled for a lead."""


class MissingPlaceholder(TemplateError):
    """A placeholder has no value for this lead and the template declares no default for it."""


class UnsafeHeader(InvalidInput):
    """A mail header value holds CR, LF, NUL or another control character (also when hidden in an
    RFC 2047 encoded word): it could inject headers, so the mail is never sent."""


class InvalidToken(NurtureError):
    """An unsubscribe, click or open token is malformed, tampered with or for another purpose."""


class ExpiredToken(InvalidToken):
    """A token whose signature is good but whose time is up."""


class MailerUnavailable(NurtureError):
    """The mailer cannot go on at all (no connection, authentication refused), raised before
    its first result or between two: the sends not answered yet stay in the outbox and are
    retried; the results given before are kept."""


class StorageError(NurtureError):
    """The storage could not do what was asked, or holds data it cannot read."""


class UnknownLead(NurtureError):
    """An activity or an operation names a lead that is not stored."""

    def __init__(self, lead_id: str) -> None:
        self.lead_id = lead_id
        super().__init__(f"no lead with id {lead_id!r} is stored; upsert the lead first")


class NoOpenHandoff(NurtureError):
    """Sales feedback for a lead that has no open hand-off."""

    def __init__(self, lead_id: str) -> None:
        self.lead_id = lead_id
        super().__init__(
            f"lead {lead_id!r} has no open hand-off to give feedback on; it was never handed "
            "to sales, or its hand-off is already closed (accepted, recycled or disqualified)"
        )
