"""The engine: the imperative shell that runs a :class:`~nurturekit.program.Program`.

It talks only to ports — a :class:`~nurturekit.ports.Storage`, a
:class:`~nurturekit.ports.Mailer` and a :class:`~nurturekit.ports.Clock` — and passes "now" down
to the pure domain.

``record(activity)``, in one storage transaction: store it (a duplicate key changes nothing) →
score → stage → scenario goals, exits and waits → triggers and enrolments.

``run_due()``: claim the enrolments whose next step is due, run each until its next wait
(writing every send to the outbox in the same transaction as the step's advance), then hand the
outbox to the mailer. A step runs at least once; a mail is handed over at most once per
idempotency key as far as the mailer can tell (the outbox records what was handed over).

The package: :mod:`.core` holds the :class:`Engine` class (settings, leads, recording,
broadcasts, ``run_due`` and the worker loop); its other methods come from its parts, one module
each: :mod:`.recording` (the record pipeline: scoring, stages, hand-off checks, goals, exits,
waits and triggers), :mod:`.steps` (the step interpreter and the batch unit of work),
:mod:`.delivery` (handing the outbox to the mailer) and :mod:`.sales` (sales feedback,
escalations and notices to the sink). :mod:`.report` holds :class:`RecordResult`,
:class:`RunReport` and the time of a run, :mod:`.base` what the parts share.
"""

from nurturekit.engine.core import Engine
from nurturekit.engine.report import RecordResult, RunReport
from nurturekit.engine.report import _Tally as _Tally
from nurturekit.engine.steps import _end as _end
from nurturekit.engine.steps import _go as _go

__all__ = ["Engine", "RecordResult", "RunReport"]
