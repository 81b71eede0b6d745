"""The bundled B2B program: nurturekit's seeds as a ready program file.

``b2b.toml`` holds seed 002's scoring and stages, seed 001's three scenarios (whitepaper
follow-up, seminar follow-up with attendee and no-show paths, dormant re-engagement), a
pricing-page trigger mail, a monthly newsletter, a "not now" nurture scenario and seed 001's
SLA hand-off, with Japanese and English templates. ``nurturekit demo`` runs it; copy the file
(:func:`bundled_program_path`) to start a program of your own::

    >>> from nurturekit.programs import b2b_program, bundled_program_path
    >>> bundled_program_path().name
    'b2b.toml'
    >>> program = b2b_program()
    >>> program.scenario("whitepaper follow-up").kpis[:2]
    ('open rate', 'click rate per mail')
    >>> program.lint()
    []
"""

from __future__ import annotations

from pathlib import Path

from nurturekit.program import Program
from nurturekit.program_file import load_program

__all__ = ["b2b_program", "bundled_program_path"]


def bundled_program_path() -> Path:
    """The path of the bundled ``b2b.toml``, inside the installed package."""
    return Path(__file__).with_name("b2b.toml")


def b2b_program() -> Program:
    """The bundled B2B program, read from :func:`bundled_program_path`."""
    return load_program(bundled_program_path())
