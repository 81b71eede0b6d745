"""The placeholder language of templates: ``{{ name }}`` slots, found in a part of a template
(any stray brace pair refused) and filled in one pass. Names only: no dots, filters or
expressions."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from nurturekit.checks import shown as _shown
from nurturekit.errors import TemplateError

_NAME = r"[a-z_][a-z0-9_]*"
# A placeholder, or a stray '{{' / '}}'. The lookaround refuses '{{{ name }}}' (a placeholder
# wrapped in one more brace) instead of leaving a brace behind in the mail.
_TOKEN = re.compile(rf"\{{\{{ *({_NAME}) *\}}\}}(?!\}})|\{{\{{|\}}\}}")
_PLACEHOLDER = re.compile(rf"\{{\{{ *({_NAME}) *\}}\}}")
_LOOKS_LIKE_PLACEHOLDER = re.compile(r"\{\{([^{}\n]{0,60}?)\}\}")
_NAME_ONLY = re.compile(_NAME)

_NAME_RULE = (
    "a placeholder is written {{ name }}, the name in lower-case letters, digits and '_', "
    "starting with a letter or '_' (no dots, filters or expressions)"
)


def _scan(template: str, part: str, text: str) -> frozenset[str]:
    """The placeholder names in one part of a template; TemplateError at any stray brace pair."""
    found: set[str] = set()
    for match in _TOKEN.finditer(text):
        if match.group(1) is not None:
            found.add(match.group(1))
            continue
        where = f"Template[{template!r}].{part}"
        start = match.start()
        line = text.count("\n", 0, start) + 1
        near = _shown(text[max(0, start - 20) : start + 40], 70)
        shaped = _LOOKS_LIKE_PLACEHOLDER.match(text, start)
        if shaped is not None and _NAME_ONLY.fullmatch(shaped.group(1).strip(" ")) is None:
            raise TemplateError(
                where,
                f"line {line}: {_shown(shaped.group())} is not a placeholder; {_NAME_RULE}, "
                f"such as {{{{ company }}}}",
            )
        pair = match.group()
        role = "opens no placeholder" if pair == "{{" else "closes no placeholder"
        raise TemplateError(
            where,
            f"line {line}: the {pair!r} in {near} {role}; {_NAME_RULE}, with no further brace "
            f"around it. Literal braces cannot be doubled: write '{pair[0]} {pair[1]}' with a "
            f"space",
        )
    return frozenset(found)


def _names(names: Iterable[str]) -> str:
    listed = [f"{{{{ {name} }}}}" for name in sorted(names)]
    if not listed:
        return "no placeholders"
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]


def _fill(text: str, values: Mapping[str, str]) -> str:
    # One pass of re.sub: a substituted value is never scanned again, so "{{ x }}" in a
    # lead's name stays as written.
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
