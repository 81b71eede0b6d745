"""What the engine's parts (the mixins of :class:`~nurturekit.engine.Engine`) share: the
settings ``Engine.__init__`` sets and the methods the parts call on one another, declared
once here for the type checker (each method is defined in one part)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from nurturekit.activity import Activity
from nurturekit.conditions import View
from nurturekit.engine.report import RecordResult
from nurturekit.lead import Lead
from nurturekit.ports import Clock, HandoffSink, LeadState, Mailer, Storage
from nurturekit.program import Program
from nurturekit.stages import StageHistory
from nurturekit.tokens import Links


class _Base:
    """The attributes of an :class:`~nurturekit.engine.Engine` its parts use."""

    program: Program
    storage: Storage
    mailer: Mailer
    links: Links
    sink: HandoffSink | None
    clock: Clock
    worker: str
    lease: timedelta
    retry_deferred: timedelta
    max_steps: int
    max_attempts: int
    _stop: threading.Event
    _claim: Callable[[], str]
    _record: Callable[[Activity, datetime], RecordResult]
    _new_state: Callable[[Lead, datetime], LeadState]
    _stages: Callable[[LeadState], StageHistory | None]
    _view: Callable[[Lead, LeadState, datetime], View]
