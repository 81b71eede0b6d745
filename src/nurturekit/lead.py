"""A lead — one person at one company — with the consent and deliverability records mail needs."""

from __future__ import annotations

import enum
import math
import re
import string
import unicodedata
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeAlias

import attrs

from nurturekit._repr import counted, quoted, summary, yes_no
from nurturekit._time import aware_utc
from nurturekit.checks import MAX_INT, MIN_INT
from nurturekit.checks import check_id as _check_id
from nurturekit.checks import control_problem as _control_problem
from nurturekit.checks import describe_char as _describe_char
from nurturekit.checks import int_problem as _int_problem
from nurturekit.checks import shown as _shown
from nurturekit.errors import InvalidInput, InvalidLead

__all__ = [
    "DEPARTMENT",
    "EMPLOYEES",
    "INDUSTRY",
    "JOB_LEVEL",
    "MAX_INT",
    "MIN_INT",
    "REGION",
    "TIME_ZONE",
    "AttributeValue",
    "Consent",
    "ContactStatus",
    "Contactability",
    "Lead",
    "validate_email",
]

# Well-known keys of Lead.attributes ("who they are"); any other non-empty key is allowed too.
JOB_LEVEL = "job_level"
INDUSTRY = "industry"
EMPLOYEES = "employees"
DEPARTMENT = "department"
REGION = "region"
TIME_ZONE = "time_zone"

AttributeValue: TypeAlias = str | int | float | bool | tuple[str, ...] | None


_SPACE = re.compile(r"\s")
_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LOCAL_ASCII = _ATEXT | {"."}
_DOMAIN_ASCII = frozenset(string.ascii_letters + string.digits + "-.")
_LDH = frozenset(string.ascii_letters + string.digits + "-")
_EXAMPLE = "'ann@example.com'"
# An all-ASCII address that passes every check of split_email, but for the lengths: a
# dot-atom local part, LDH labels that neither start nor end with '-', at least one dot. Most
# addresses are such, and one regular expression checks them in a fraction of the time of
# the character-by-character checks, which still judge (and explain) every other address.
# With the same for URLs (templates/outgoing.py, _PLAIN_HTTPS): benchmarks/send.py at 20,000
# leads, 8 alternating runs on 2026-12-06, median 5,774 sends/s against 5,142 without (+9.9%).
_ATOM = "[" + re.escape("".join(sorted(_ATEXT))) + "]+"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN_ADDRESS = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+{_LABEL})")


def _check_optional_text(value: object, where: str, error: type[InvalidInput]) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise error(where, f"expected a str or None, got {type(value).__name__} {_shown(value)}")
    problem = _control_problem(value)
    if problem is not None:
        raise error(where, f"{_shown(value)} {problem}; remove it")


def _check_required_text(value: object, where: str, error: type[InvalidInput]) -> None:
    if not isinstance(value, str):
        raise error(where, f"expected a str, got {type(value).__name__} {_shown(value)}")
    if not value.strip():
        raise error(
            where,
            f"{_shown(value)} is empty; the opt-in record must say how consent was given "
            f"and the exact wording agreed to",
        )


def _where(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _lead_id(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_id(value, _where(instance, attribute), InvalidLead)


def _optional_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_optional_text(value, _where(instance, attribute), InvalidLead)


def _required_text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_required_text(value, _where(instance, attribute), InvalidLead)


def _utc(value: datetime, where: str) -> datetime:
    try:
        return aware_utc(value, where)
    except OverflowError:
        raise InvalidLead(
            where, f"{_shown(value)} cannot be expressed in UTC (out of range)"
        ) from None


def _consent_at(value: datetime) -> datetime:
    return _utc(value, "Consent.at")


def _contactability_since(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value, "Contactability.since")


def _lead_created_at(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value, "Lead.created_at")


# --- e-mail ---------------------------------------------------------------------------------------


def split_email(value: object, where: str) -> tuple[str, str]:
    """Check an address; return its local part and its domain in IDNA ASCII form."""
    if isinstance(value, str):
        plain = _PLAIN_ADDRESS.fullmatch(value)
        if plain is not None and len(plain[1]) <= 64 and len(value) <= 254:
            return plain[1], plain[2]
    return _split_each_part(value, where)


def _split_each_part(value: object, where: str) -> tuple[str, str]:
    """:func:`split_email`, checking one character and one part at a time (and saying which
    is wrong)."""
    if not isinstance(value, str):
        raise InvalidLead(
            where, f"expected the address as a str, got {type(value).__name__} {_shown(value)}"
        )
    shown = _shown(value)
    if not value:
        raise InvalidLead(where, f"is empty; write an address such as {_EXAMPLE}")
    problem = _control_problem(value)
    if problem is not None:
        raise InvalidLead(
            where,
            f"{shown} {problem}; an address cannot contain control characters "
            f"(a CR or LF could inject mail headers), remove it",
        )
    if '"' in value:
        raise InvalidLead(
            where,
            f"{shown} has a '\"'; quoted local parts such as '\"ann smith\"@example.com' "
            f"are not supported, write the address without quotes",
        )
    space = _SPACE.search(value)
    if space is not None:
        raise InvalidLead(
            where,
            f"{shown} contains whitespace ({_describe_char(space.group())}) at position "
            f"{space.start()}; an address has no spaces, trim or remove it",
        )
    ats = value.count("@")
    if ats == 0:
        raise InvalidLead(where, f"{shown} has no '@' sign; an address looks like {_EXAMPLE}")
    if ats > 1:
        raise InvalidLead(
            where, f"{shown} has {ats} '@' signs; an address has exactly one, as in {_EXAMPLE}"
        )
    local, _, domain = value.partition("@")
    local_octets = _check_local_part(local, shown, where)
    ascii_domain = _ascii_domain(domain, shown, where)
    total = local_octets + 1 + len(ascii_domain)
    if total > 254:
        raise InvalidLead(
            where,
            f"{shown} is {total} octets long (domain in ASCII form); an address is at most 254",
        )
    return local, ascii_domain


def _check_local_part(local: str, shown: str, where: str) -> int:
    """Check the part before '@' and return its length in UTF-8 octets."""
    if not local:
        raise InvalidLead(
            where, f"{shown} has nothing before the '@'; write the mailbox, as in {_EXAMPLE}"
        )
    for char in local:
        if char in _LOCAL_ASCII:
            continue
        # SMTPUTF8 mailboxes may use letters of any script; marks and digits belong to them.
        if char > "\x7f" and unicodedata.category(char)[0] in "LMN":
            continue
        raise InvalidLead(
            where,
            f"{shown} has {char!r} before the '@'; the local part may hold letters, digits, "
            f"'.' and !#$%&'*+-/=?^_`{{|}}~",
        )
    if local.startswith(".") or local.endswith("."):
        raise InvalidLead(
            where,
            f"{shown} has a dot at the start or end of the part before '@'; "
            f"move or remove it, as in 'ann.lee@example.com'",
        )
    if ".." in local:
        raise InvalidLead(
            where,
            f"{shown} has two dots in a row before the '@'; write one, as in 'ann.lee@example.com'",
        )
    octets = len(local.encode("utf-8"))
    if octets > 64:
        raise InvalidLead(
            where,
            f"{shown} has {octets} octets (UTF-8) before the '@'; the local part is at most 64",
        )
    return octets


def _ascii_domain(domain: str, shown: str, where: str) -> str:
    """Check the part after '@' and return it in IDNA ASCII (punycode) form."""
    if not domain:
        raise InvalidLead(
            where, f"{shown} has nothing after the '@'; write the domain, as in {_EXAMPLE}"
        )
    for char in domain:
        if char in _DOMAIN_ASCII or (char > "\x7f" and unicodedata.category(char)[0] in "LMN"):
            continue
        raise InvalidLead(
            where,
            f"{shown} has {char!r} after the '@'; a domain holds letters, digits, '-' and '.', "
            f"as in 'example.co.jp'",
        )
    labels = domain.split(".")
    if "" in labels:
        raise InvalidLead(
            where,
            f"{shown} has an empty label in its domain (a dot at the start or end, or two dots "
            f"in a row); write it as in 'example.co.jp'",
        )
    if len(labels) < 2:
        raise InvalidLead(
            where, f"{shown} has no dot in its domain; write a full domain such as 'example.com'"
        )
    ascii_labels = []
    for label in labels:
        if label.isascii():
            ascii_label = label
        else:
            try:
                ascii_label = label.encode("idna").decode("ascii")
            except UnicodeError as exc:
                raise InvalidLead(
                    where,
                    f"{shown}: {label!r} is not a valid (internationalised) domain name label "
                    f"({exc}); check the domain's spelling",
                ) from None
        if not 1 <= len(ascii_label) <= 63:
            raise InvalidLead(
                where,
                f"{shown} has the domain label {_shown(label)}, {len(ascii_label)} characters "
                f"in ASCII form; a label is 1 to 63",
            )
        if not _LDH.issuperset(ascii_label) or "-" in (ascii_label[0], ascii_label[-1]):
            in_ascii = "" if ascii_label == label else f" ({ascii_label!r} in ASCII form)"
            raise InvalidLead(
                where,
                f"{shown} has the domain label {_shown(label)}{in_ascii}; a label holds letters, "
                f"digits and '-', and does not start or end with '-'",
            )
        ascii_labels.append(ascii_label)
    ascii_domain = ".".join(ascii_labels)
    if len(ascii_domain) > 253:
        raise InvalidLead(
            where,
            f"{shown} has a domain of {len(ascii_domain)} characters in ASCII form; "
            f"a domain is at most 253",
        )
    return ascii_domain


def validate_email(value: str, where: str = "email") -> str:
    """Return ``value`` unchanged if it is an address nurturekit can send to, else raise.

    Internationalised domains (``tanaka@例え.jp``) and non-ASCII mailboxes (SMTPUTF8) are
    accepted; quoted local parts and address literals are not. Case is kept as given. Raises
    :class:`~nurturekit.errors.InvalidLead` naming ``where``::

        >>> validate_email("Ann.Lee+news@Example.com")
        'Ann.Lee+news@Example.com'
    """
    split_email(value, where)
    return value


# --- consent and deliverability -------------------------------------------------------------------


class ContactStatus(str, enum.Enum):
    """Whether marketing mail may be sent to a lead's address."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    DO_NOT_CONTACT = "do_not_contact"


def _contact_status(value: ContactStatus | str) -> ContactStatus:
    try:
        return ContactStatus(value)
    except ValueError:
        allowed = ", ".join(repr(status.value) for status in ContactStatus)
        raise InvalidLead(
            "Contactability.status", f"{_shown(value)} is not a contact status; write {allowed}"
        ) from None


@attrs.frozen(kw_only=True)
class Consent:
    """The opt-in record: when, how and to what wording the person agreed to receive mail.

    Japan's anti-spam law (特定電子メール法) requires the sender to keep this record.
    """

    at: datetime = attrs.field(converter=_consent_at)
    #: How consent was given: ``"web form"``, ``"business card at trade show"`` …
    method: str = attrs.field(validator=_required_text)
    #: The exact text the person agreed to.
    wording: str = attrs.field(validator=_required_text)
    #: Where: the form's URL or the event's name.
    source: str | None = attrs.field(default=None, validator=_optional_text)


@attrs.frozen(kw_only=True)
class Contactability:
    """A lead's deliverability state, since when and why (an unsubscribe, a hard bounce …)."""

    status: ContactStatus = attrs.field(default=ContactStatus.SUBSCRIBED, converter=_contact_status)
    since: datetime | None = attrs.field(default=None, converter=_contactability_since)
    reason: str | None = attrs.field(default=None, validator=_optional_text)

    @property
    def can_receive_marketing(self) -> bool:
        """True only while the lead is subscribed."""
        return self.status is ContactStatus.SUBSCRIBED


# --- the lead -------------------------------------------------------------------------------------

# Lead.get() answers these from the lead's own fields, so an attribute of the same name could
# never be read back; such attributes are refused rather than silently shadowed.
_FIELD_KEYS = frozenset({"id", "email", "name", "company", "source", "owner"})
_NO_ATTRIBUTES: Mapping[str, AttributeValue] = MappingProxyType({})


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text_value(value: str, where: str) -> None:
    """Refuse a lone surrogate: it is not text, and no store or mail can encode it."""
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        raise InvalidLead(
            where,
            f"{_shown(value)} holds a lone surrogate ({_describe_char(found.group())}) at "
            f"position {found.start()}, which is not text; decode the source correctly",
        )


def _attribute_value(key: str, value: object) -> AttributeValue:
    where = f"Lead.attributes[{key!r}]"
    if isinstance(value, str):
        _check_text_value(value, where)
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if MIN_INT <= value <= MAX_INT:
            return value
        raise InvalidLead(where, _int_problem(_shown(value)))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidLead(where, f"{value!r} is not a finite number; write a real number")
        return value
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise InvalidLead(
                    f"{where}[{index}]",
                    f"expected a str in the list, got {type(item).__name__} {_shown(item)}",
                )
            _check_text_value(item, f"{where}[{index}]")
        return tuple(value)
    raise InvalidLead(
        where,
        f"a {type(value).__name__} cannot be an attribute ({_shown(value)}); write a str, int, "
        f"float, bool, None or a list of str",
    )


def _freeze_attributes(
    value: Mapping[str, AttributeValue | list[str]],
) -> Mapping[str, AttributeValue]:
    if not isinstance(value, Mapping):
        raise InvalidLead(
            "Lead.attributes",
            f"expected a mapping of names to values, got {type(value).__name__} {_shown(value)}",
        )
    if not value:
        return _NO_ATTRIBUTES
    frozen: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise InvalidLead(
                f"Lead.attributes[{_shown(key)}]", "an attribute name must be a non-empty str"
            )
        if key in _FIELD_KEYS:
            raise InvalidLead(
                f"Lead.attributes[{key!r}]",
                f"{key!r} is a field of Lead; set Lead.{key} instead of an attribute",
            )
        frozen[key] = _attribute_value(key, item)
    zone = frozen.get(TIME_ZONE)
    if zone is not None:
        _zone(zone)
    return MappingProxyType(frozen)


def _zone(value: AttributeValue) -> zoneinfo.ZoneInfo:
    where = f"Lead.attributes[{TIME_ZONE!r}]"
    if isinstance(value, str):
        try:
            return zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise InvalidLead(
        where,
        f"{_shown(value)} is not an IANA time zone name known to this system; write one such "
        f"as 'Asia/Tokyo' or 'Europe/Berlin' (on Windows, install the 'tzdata' package)",
    )


def _contactability(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Contactability):
        raise InvalidLead(
            _where(instance, attribute),
            f"expected a Contactability, got {type(value).__name__} {_shown(value)}",
        )


def _optional_consent(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Consent):
        raise InvalidLead(
            _where(instance, attribute),
            f"expected a Consent or None, got {type(value).__name__} {_shown(value)}",
        )


@attrs.frozen(kw_only=True)
class Lead:
    """One person at one company: who they are, how to reach them, and whether we may.

    ``attributes`` holds "who they are" (:data:`JOB_LEVEL`, :data:`INDUSTRY`, :data:`EMPLOYEES`,
    :data:`DEPARTMENT`, :data:`REGION`, :data:`TIME_ZONE` and any other names); it is stored
    read-only. An attribute's value is a str, an int from :data:`MIN_INT` to :data:`MAX_INT`
    (64-bit), a finite float, a bool, ``None`` or a list of str (kept as a tuple): nothing
    nests deeper. ``created_at`` stays ``None`` until the engine stores the lead.
    """

    id: str = attrs.field(validator=_lead_id)
    email: str
    name: str | None = attrs.field(default=None, validator=_optional_text)
    company: str | None = attrs.field(default=None, validator=_optional_text)
    # A mapping proxy is unhashable, so the hash leaves it out; equality still compares it.
    attributes: Mapping[str, AttributeValue] = attrs.field(
        default=_NO_ATTRIBUTES, converter=_freeze_attributes, hash=False
    )
    #: How the lead was acquired: ``"whitepaper"``, ``"trade_show"``, ``"seminar"`` …
    source: str | None = attrs.field(default=None, validator=_optional_text)
    consent: Consent | None = attrs.field(default=None, validator=_optional_consent)
    contactability: Contactability = attrs.field(factory=Contactability, validator=_contactability)
    owner: str | None = attrs.field(default=None, validator=_optional_text)
    created_at: datetime | None = attrs.field(default=None, converter=_lead_created_at)
    _email_ascii: str = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        local, ascii_domain = split_email(self.email, "Lead.email")
        object.__setattr__(self, "_email_ascii", f"{local}@{ascii_domain}")

    def __repr__(self) -> str:
        """Who the lead is and whether we may mail them, in at most 200 characters.

        >>> Lead(id="l1", email="ann@acme.jp", company="Acme", attributes={"region": "jp"})
        <Lead id='l1' email='ann@acme.jp' company='Acme' consent=no contact=subscribed, 1 attribute>
        """
        return summary(
            "Lead",
            [
                ("id", quoted(self.id, 32)),
                ("email", quoted(self.email)),
                ("company", quoted(self.company, 28)),
                ("consent", yes_no(self.consent)),
                ("contact", self.contactability.status.value),
            ],
            [counted(len(self.attributes), "attribute")],
        )

    def get(self, key: str, default: AttributeValue = None) -> AttributeValue:
        """Look ``key`` up among the fields id, email, name, company, source and owner, then
        among ``attributes``; a field that is ``None`` gives ``default``.

            >>> lead = Lead(id="l1", email="ann@example.com", attributes={"industry": "saas"})
            >>> lead.get("industry"), lead.get("email"), lead.get("region", "unknown")
            ('saas', 'ann@example.com', 'unknown')
        """
        if key in _FIELD_KEYS:
            found: AttributeValue = getattr(self, key)
            return default if found is None else found
        return self.attributes.get(key, default)

    @property
    def email_ascii(self) -> str:
        """The address with its domain in IDNA ASCII form, for SMTP (``tanaka@xn--r8jz45g.jp``)."""
        return self._email_ascii

    @property
    def email_domain(self) -> str:
        """The part of the address after '@', as given."""
        return self.email.rpartition("@")[2]

    @property
    def time_zone(self) -> zoneinfo.ZoneInfo | None:
        """The lead's time zone from ``attributes["time_zone"]``, or ``None`` if not known."""
        zone = self.attributes.get(TIME_ZONE)
        return None if zone is None else _zone(zone)

    def evolve(self, **changes: Any) -> Lead:
        """Return a copy with ``changes`` applied, validated like a new lead."""
        return attrs.evolve(self, **changes)
