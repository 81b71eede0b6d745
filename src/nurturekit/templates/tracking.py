"""Opens and clicks, measured: the links of a mail's bodies made into signed click URLs, and an
open pixel in its HTML (:class:`Tracking`, used by :func:`~nurturekit.templates.compose`).

Every ``http``/``https`` link is wrapped: in the HTML, the ``href`` of each ``<a>``; in the
text, each URL written out. The click URL carries the target inside its signed token, so the
click page redirects only to targets put in a mail (see :class:`nurturekit.tokens.Links`).
Left as they are:

- the unsubscribe link (and every link to the same URL);
- a link whose ``<a>`` has ``data-nk-track="off"``;
- a link that starts with one of the template's ``untracked`` prefixes (text and HTML);
- every link of a template with ``track=False`` (which gets no open pixel either);
- links that are not http(s): ``mailto:``, ``tel:``, ``#anchors``;
- a link that no click token can hold (non-ASCII characters not percent-encoded, or longer
  than 2,000 characters): it still works, untracked.

The pixel is a 1×1 image at the end of the HTML (before ``</body>`` when there is one). A mail
without HTML cannot be seen opening; its clicks still count as opens in the reports.

No I/O and no clock: the caller (the engine) gives the functions that sign.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

import attrs

from nurturekit.errors import NurtureError

__all__ = ["Tracking", "track_html", "track_text"]

# An <a …> start tag, and in it the href attribute with its quoted or bare value.
_ANCHOR = re.compile(r"<a\b[^>]*>", re.IGNORECASE)
_HREF = re.compile(
    r"""(\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""",
    re.IGNORECASE,
)
_NO_TRACK = re.compile(r"""\bdata-nk-track\s*=\s*["']?off\b""", re.IGNORECASE)
# A URL written out in text: http(s):// and what follows up to white space or a delimiter.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
# Characters that end a sentence rather than the URL it ends with.
_TRAILING = ".,;:!?"
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@attrs.frozen(kw_only=True)
class Tracking:
    """How one send's links and opens are measured.

    ``click_url`` makes the signed click URL of a target; ``open_url`` is the pixel's URL
    (``None``: no pixel). :meth:`nurturekit.tokens.Links.tracking` makes one for a send::

        tracking = links.tracking(lead.id, send_key, now=now)
        compose(template, lead, sender, key=send_key, created_at=now,
                unsubscribe_url=..., tracking=tracking)
    """

    click_url: Callable[[str], str]
    open_url: str | None = None


def _is_web(url: str) -> bool:
    head = url[:8].lower()
    return head.startswith("https://") or head.startswith("http://")


def _wrapped(url: str, tracking: Tracking) -> str | None:
    """The click URL of ``url``, or ``None`` when no click token can hold it."""
    try:
        return tracking.click_url(url)
    except NurtureError:
        return None


def _kept(url: str, keep: Sequence[str]) -> bool:
    """Whether ``url`` stays as it is: not http(s), or one of the untracked ones."""
    return not _is_web(url) or any(url.startswith(prefix) for prefix in keep if prefix)


def track_html(page: str, tracking: Tracking, keep: Sequence[str]) -> str:
    """``page`` with the ``href`` of each ``<a>`` made a click URL (unless left as it is: see
    the module) and the open pixel added."""

    def anchor(match: re.Match[str]) -> str:
        tag = match.group()
        if _NO_TRACK.search(tag):
            return tag
        found = _HREF.search(tag)
        if found is None:
            return tag
        written = next(v for v in found.groups()[1:] if v is not None)
        target = html.unescape(written).strip()
        if _kept(target, keep):
            return tag
        wrapped = _wrapped(target, tracking)
        if wrapped is None:
            return tag
        shown = html.escape(wrapped, quote=True)
        return f'{tag[: found.start()]}{found.group(1)}"{shown}"{tag[found.end() :]}'

    page = _ANCHOR.sub(anchor, page)
    if tracking.open_url is None:
        return page
    pixel = (
        f'<img src="{html.escape(tracking.open_url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px">'
    )
    ends = list(_BODY_END.finditer(page))
    if not ends:
        return page + pixel
    at = ends[-1].start()
    return page[:at] + pixel + page[at:]


def track_text(text: str, tracking: Tracking, keep: Sequence[str]) -> str:
    """``text`` with each http(s) URL written out made a click URL (unless left as it is)."""

    def url(match: re.Match[str]) -> str:
        found = match.group()
        end = len(found)
        # A sentence's full stop, or a closing parenthesis that opened before the URL, is not
        # part of it.
        while end and (
            found[end - 1] in _TRAILING
            or (found[end - 1] == ")" and found[:end].count("(") < found[:end].count(")"))
        ):
            end -= 1
        target, rest = found[:end], found[end:]
        if len(target) <= len("https://") or _kept(target, keep):
            return found
        wrapped = _wrapped(target, tracking)
        return found if wrapped is None else wrapped + rest

    return _TEXT_URL.sub(url, text)
