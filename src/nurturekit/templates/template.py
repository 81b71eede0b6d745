"""The :class:`Template` value and its checks, the mail it renders (:class:`RenderedMail`), and
the placeholders a lead and the engine fill (:func:`lead_values`, :func:`unfillable`)."""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from nurturekit._repr import quoted, summary, yes_no
from nurturekit.checks import check_id as _check_id
from nurturekit.checks import describe_char as _describe_char
from nurturekit.checks import shown as _shown
from nurturekit.errors import MissingPlaceholder, TemplateError, UnsafeHeader
from nurturekit.lead import (
    DEPARTMENT,
    EMPLOYEES,
    INDUSTRY,
    JOB_LEVEL,
    REGION,
    TIME_ZONE,
    AttributeValue,
    Lead,
)
from nurturekit.templates.headers import check_header
from nurturekit.templates.language import _NAME_ONLY, _NAME_RULE, _fill, _names, _scan

__all__ = [
    "LEAD_PLACEHOLDERS",
    "SYSTEM_PLACEHOLDERS",
    "RenderedMail",
    "Template",
    "lead_values",
    "unfillable",
]

# Text parts may hold TAB, LF and CR; every other control and lone surrogates are refused.
_BODY_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_NO_DEFAULTS: Mapping[str, str] = MappingProxyType({})
_PARTS = ("subject", "text", "html")
# Hiragana, katakana (full and half width) and CJK ideographs: one of them makes a mail "ja".
_JAPANESE = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)
# A BCP 47 language tag as mail needs it: a two- or three-letter language, then optional
# subtags ("ja", "en", "en-US", "zh-Hant-TW").
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")


def _check_language(value: object, where: str) -> str:
    """``value`` if it is a language tag such as ``"ja"`` or ``"en-US"``, else TemplateError."""
    if not isinstance(value, str) or _LANGUAGE_TAG.fullmatch(value) is None:
        raise TemplateError(
            where,
            f"{_shown(value)} is not a language tag; write a BCP 47 tag such as 'ja', 'en' or "
            f"'en-US'",
        )
    return value


def _check_part(template: str, part: str, value: object, *, optional: bool = False) -> None:
    where = f"Template[{template!r}].{part}"
    if value is None and optional:
        return
    if not isinstance(value, str):
        wanted = "a str or None" if optional else "a str"
        raise TemplateError(where, f"expected {wanted}, got {type(value).__name__} {_shown(value)}")
    if not value.strip():
        raise TemplateError(where, f"is empty; write the mail's {part}")
    bad = _BODY_FORBIDDEN.search(value)
    if bad is not None:
        raise TemplateError(
            where,
            f"contains {_describe_char(bad.group())} at position {bad.start()}; a template "
            f"holds text, line breaks and tabs only, remove it",
        )


def _template_name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_id(value, "Template.name", TemplateError, "a template name", "welcome")


def _freeze_defaults(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TemplateError(
            "Template.defaults",
            f"expected a mapping of placeholder names to str, got {type(value).__name__} "
            f"{_shown(value)}",
        )
    if not value:
        return _NO_DEFAULTS
    for name, item in value.items():
        if not isinstance(name, str) or _NAME_ONLY.fullmatch(name) is None:
            raise TemplateError(
                f"Template.defaults[{_shown(name)}]",
                f"is not a placeholder name; {_NAME_RULE}",
            )
        if not isinstance(item, str):
            raise TemplateError(
                f"Template.defaults[{name!r}]",
                f"expected a str, got {type(item).__name__} {_shown(item)}; defaults are text",
            )
    return MappingProxyType(dict(value))


def _untracked(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, frozenset, set)):
        raise TemplateError(
            "Template.untracked",
            f"expected a list of URL prefixes, got {type(value).__name__} {_shown(value)}; "
            f"write one such as ['https://example.com/legal']",
        )
    prefixes = tuple(value)
    for index, prefix in enumerate(prefixes):
        if not isinstance(prefix, str) or not prefix.lower().startswith(("http://", "https://")):
            raise TemplateError(
                f"Template.untracked[{index}]",
                f"{_shown(prefix)} is not the start of an http(s) URL; write one such as "
                f"'https://example.com/legal'",
            )
    return prefixes


@attrs.frozen(kw_only=True)
class RenderedMail:
    """A template filled for one lead: the subject, the plain text and the optional HTML."""

    subject: str
    text: str
    html: str | None = None


@attrs.frozen(kw_only=True)
class Template:
    """A mail with ``{{ name }}`` placeholders in its subject, text and optional HTML.

    Placeholders are plain names (``[a-z_][a-z0-9_]*``, spaces inside the braces optional):
    no dots, filters or expressions, so a template cannot reach into objects. Values are
    substituted once, as text (a value holding ``{{ x }}`` stays as written) and are
    HTML-escaped in the HTML part. A ``{{`` or ``}}`` that is not part of a placeholder is
    refused when the template is defined; there is no escape for literal double braces.
    ``defaults`` fill placeholders a lead has no value for; a default for a placeholder the
    template does not use is refused as a likely typo::

        >>> welcome = Template(name="welcome", subject="{{ company }} 様へのご案内",
        ...                    text="{{name}} 様\\n", defaults={"company": "貴社"})
        >>> sorted(welcome.placeholders)
        ['company', 'name']
        >>> welcome.render({"name": "田中"}).subject
        '貴社 様へのご案内'

    ``marketing`` mail gets the legal footer and the List-Unsubscribe headers from
    :func:`compose`; set it to ``False`` for transactional mail (a seminar's access link).

    When the engine has :class:`~nurturekit.tokens.Links`, every http(s) link of the text and
    the HTML becomes a signed click URL and the HTML gets an open pixel (see
    :mod:`nurturekit.templates.tracking`). ``track=False`` leaves the whole template alone;
    ``untracked`` lists URL prefixes left as they are (``("https://example.com/legal",)``), and
    in the HTML ``<a href="…" data-nk-track="off">`` leaves one link as it is.

    ``language`` is the mail's language, a BCP 47 tag such as ``"ja"`` or ``"en"``; it picks
    the wording of the legal footer (see :class:`~nurturekit.messages.Sender`). Without it,
    the language is read from the template's own subject and text (placeholders unfilled, so
    a lead's Japanese name never makes an English mail Japanese): ``"ja"`` when they hold any
    Japanese character (hiragana, katakana or a CJK ideograph), else ``"en"``. Set it when
    that rule would guess wrong, e.g. on a template whose text is all placeholders::

        >>> Template(name="wp", subject="資料のご案内", text="{{ name }} 様").mail_language
        'ja'
        >>> Template(name="pricing_en", subject="Your pricing guide",
        ...          text="Hello {{ name }},").mail_language
        'en'
        >>> Template(name="any", subject="{{ subject }}", text="{{ body }}",
        ...          language="ja").mail_language
        'ja'
    """

    name: str = attrs.field(validator=_template_name)
    subject: str
    text: str
    html: str | None = None
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    defaults: Mapping[str, str] = attrs.field(
        default=_NO_DEFAULTS, converter=_freeze_defaults, hash=False
    )
    marketing: bool = True
    track: bool = True
    untracked: tuple[str, ...] = attrs.field(default=(), converter=_untracked)
    language: str | None = None
    _found: Mapping[str, frozenset[str]] = attrs.field(init=False, eq=False, repr=False, hash=False)
    _language: str = attrs.field(init=False, eq=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        name = self.name
        _check_part(name, "subject", self.subject)
        _check_part(name, "text", self.text)
        _check_part(name, "html", self.html, optional=True)
        try:
            check_header("Subject", self.subject)
        except UnsafeHeader as exc:
            raise UnsafeHeader(f"Template[{name!r}].subject", exc.message) from None
        found = {part: _scan(name, part, getattr(self, part) or "") for part in _PARTS}
        object.__setattr__(self, "_found", MappingProxyType(found))
        used = frozenset().union(*found.values())
        for key, value in self.defaults.items():
            if key not in used:
                close = difflib.get_close_matches(key, sorted(used), n=1)
                known = LEAD_PLACEHOLDERS | SYSTEM_PLACEHOLDERS
                if close and close[0] not in known:
                    # Most likely the template's placeholder is the misspelt one: say so there.
                    part = next(p for p in _PARTS if close[0] in found[p])
                    raise TemplateError(
                        f"Template[{name!r}].{part}",
                        f"uses {{{{ {close[0]} }}}}, and a default is given for {{{{ {key} }}}}, "
                        f"which the template does not use: fix the spelling of one of them",
                    )
                raise TemplateError(
                    f"Template[{name!r}].defaults[{key!r}]",
                    f"the template has no placeholder {{{{ {key} }}}}; remove the default or "
                    f"fix its name (the template uses {_names(used)})",
                )
            if key in found["subject"]:
                try:
                    check_header("Subject", value)
                except UnsafeHeader as exc:
                    raise UnsafeHeader(
                        f"Template[{name!r}].defaults[{key!r}]",
                        f"is used in the subject, where {exc.message}",
                    ) from None
        for flag in ("marketing", "track"):
            value = getattr(self, flag)
            if not isinstance(value, bool):
                raise TemplateError(
                    f"Template[{name!r}].{flag}",
                    f"expected True or False, got {type(value).__name__} {_shown(value)}",
                )
        if self.language is not None:
            _check_language(self.language, f"Template[{name!r}].language")
            language = self.language
        else:
            japanese = _JAPANESE.search(self.subject) or _JAPANESE.search(self.text)
            language = "ja" if japanese else "en"
        object.__setattr__(self, "_language", language)

    def __repr__(self) -> str:
        """The name, the subject cut short, the mail's language, and whether it is marketing
        mail and has an HTML part.

        >>> Template(name="wp", subject="資料のご案内", text="{{ name }} 様")
        <Template name='wp' subject='資料のご案内' language='ja' marketing=True html=no>
        """
        return summary(
            "Template",
            [
                ("name", quoted(self.name)),
                ("subject", quoted(self.subject, 50)),
                ("language", quoted(getattr(self, "_language", self.language))),
                ("marketing", self.marketing),
                ("html", yes_no(self.html)),
            ],
        )

    @property
    def version(self) -> str:
        """A short, stable fingerprint of what this template makes a mail from: 12 hex digits.

        It is the start of the SHA-256 of a canonical JSON (sorted keys, ASCII only, no
        spaces) of the subject, the text, the HTML, the ``defaults`` (sorted by name),
        ``marketing``, ``track``, the ``untracked`` prefixes (sorted, each once) and the mail's
        language (:attr:`mail_language`). Any change to one of them gives another version;
        nothing else does: not the template's :attr:`name`, not the order the defaults or
        prefixes were written in, not a ``language`` set to what the subject and text already
        imply. It is the same in every process, on every machine and Python version (no
        ``hash()``), so a version stored today (a recorded test-send, see
        :meth:`~nurturekit.ports.Storage.record_test_send`) still says tomorrow whether the
        template changed since. The program's sender and footer are not the template's and
        are not part of it::

            >>> wp = Template(name="wp", subject="資料のご案内", text="{{ name }} 様")
            >>> wp.version
            'f1293b13fea5'
            >>> attrs.evolve(wp, name="wp_copy").version == wp.version
            True
            >>> attrs.evolve(wp, language="ja").version == wp.version  # already "ja"
            True
            >>> attrs.evolve(wp, text="{{ name }} 様へ").version == wp.version
            False
        """
        canonical = {
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "defaults": dict(sorted(self.defaults.items())),
            "marketing": self.marketing,
            "track": self.track,
            "untracked": sorted(set(self.untracked)),
            "language": self._language,
        }
        text = json.dumps(canonical, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]

    @property
    def mail_language(self) -> str:
        """The language of this template's mail: :attr:`language`, or ``"ja"`` when the
        subject or text holds a Japanese character, else ``"en"``."""
        return self._language

    @property
    def placeholders(self) -> frozenset[str]:
        """Every placeholder name used in the subject, the text or the HTML."""
        return frozenset().union(*self._found.values())

    def render(self, values: Mapping[str, str]) -> RenderedMail:
        """Fill the placeholders from ``values``, then from ``defaults``.

        Raises :class:`~nurturekit.errors.MissingPlaceholder` naming every placeholder that
        has neither (a value of ``None`` counts as missing), and
        :class:`~nurturekit.errors.UnsafeHeader` if a value would put a line break or another
        control character into the subject.
        """
        where = f"Template[{self.name!r}]"
        filled: dict[str, str] = {}
        missing: list[str] = []
        for key in sorted(self.placeholders):
            value = values.get(key)
            if value is None:
                value = self.defaults.get(key)
            if value is None:
                missing.append(key)
            elif not isinstance(value, str):
                raise TemplateError(
                    f"{where} value of {{{{ {key} }}}}",
                    f"expected a str, got {type(value).__name__} {_shown(value)}",
                )
            else:
                filled[key] = value
        if missing:
            shown = _names(missing)
            raise MissingPlaceholder(
                where,
                f"has no value for {shown}; set the lead's field or attribute of that name, "
                f"pass it as an extra value, or declare a default in the template "
                f"(defaults={{{missing[0]!r}: '…'}})",
            )
        for key in self._found["subject"]:
            try:
                check_header("Subject", filled[key])
            except UnsafeHeader as exc:
                raise UnsafeHeader(
                    f"{where}.subject", f"the value of {{{{ {key} }}}} is refused: {exc.message}"
                ) from None
        subject = _fill(self.subject, filled)
        try:
            check_header("Subject", subject)
        except UnsafeHeader as exc:
            raise UnsafeHeader(f"{where}.subject", exc.message) from None
        escaped = {key: html.escape(value, quote=True) for key, value in filled.items()}
        return RenderedMail(
            subject=subject,
            text=_fill(self.text, filled),
            html=None if self.html is None else _fill(self.html, escaped),
        )


#: Placeholders the engine fills for every mail, whatever the lead.
SYSTEM_PLACEHOLDERS: frozenset[str] = frozenset(
    {"unsubscribe_url", "sender_name", "sender_address", "sender_postal_address"}
)

#: Placeholders filled from the lead's own fields and its well-known attributes.
LEAD_PLACEHOLDERS: frozenset[str] = frozenset(
    {
        "id",
        "email",
        "name",
        "company",
        "source",
        "owner",
        JOB_LEVEL,
        INDUSTRY,
        EMPLOYEES,
        DEPARTMENT,
        REGION,
        TIME_ZONE,
    }
)


def _as_text(value: AttributeValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def lead_values(lead: Lead) -> dict[str, str]:
    """The placeholder values a lead gives: its fields, then every attribute, as text.

    Fields and attributes that are ``None`` are left out (so a template's default applies).
    A list is joined with ``", "``, a bool is ``"yes"`` or ``"no"``, a whole float such as
    ``250.0`` is written ``"250"``::

        >>> from nurturekit import Lead
        >>> lead_values(Lead(id="l1", email="ann@example.com", attributes={"employees": 250}))
        {'id': 'l1', 'email': 'ann@example.com', 'employees': '250'}
    """
    values: dict[str, str] = {}
    for field in ("id", "email", "name", "company", "source", "owner"):
        found = getattr(lead, field)
        if found is not None:
            values[field] = found
    for key, value in lead.attributes.items():
        if value is not None:
            values[key] = _as_text(value)
    return values


def unfillable(template: Template, known: Iterable[str] = ()) -> list[str]:
    """The placeholders of ``template`` nothing can fill, sorted: no default, not a lead field
    or well-known attribute, not a system value, and not in ``known`` (the attribute names the
    program declares, extra values the scenario passes). Program validation uses it to catch a
    misspelt ``{{ nmae }}`` before launch::

        >>> unfillable(Template(name="t", subject="Hi", text="{{ nmae }}"))
        ['nmae']
    """
    fillable = SYSTEM_PLACEHOLDERS | LEAD_PLACEHOLDERS | frozenset(known)
    return sorted(
        name
        for name in template.placeholders
        if name not in fillable and name not in template.defaults
    )
