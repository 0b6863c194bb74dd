"""The one scrubber: nothing secret leaves the operator (pure).

Every string that can carry database or tenant output (a Job's termination message,
an Alembic or driver error, a message built around a URL read from a Secret, the
output of `schemagate verify`) passes `Scrubber.scrub` where it enters, and once more
where it leaves: the status write, the pod conditions, Events and log records.

Two kinds of secret are removed:

- what any text may carry: the password of any URL (`scheme://user:PASSWORD@...`),
  and the value of any `...password...=VALUE` key, quoted or not, as libpq DSNs,
  URL queries, shell traces (`PGPASSWORD=...`) and JSON (`"password": "..."`) write it;
- what the operator knows: every URL it read from a Secret is `learn`ed, and its
  literal password (decoded, percent-encoded, `+`-encoded) and the whole URL are
  replaced wherever they appear, even alone on a line of a shell trace.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
#: Secrets remembered at most (one or a few per DatabaseSchema); the oldest go first.
MAX_SECRETS = 4096

# `scheme://user:password@`: the password runs to the last `@` before a blank or a quote,
# as a URL parser reads it (an unencoded `@` in a password is wrong, but may be written).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"<>]*:)(?P<password>[^\s'\"<>]*)@")
# A value: quoted as libpq writes it ('it\\'s'), as a shell does ('it'\\''s'), as JSON
# does ("it's"), or bare up to a blank or a separator; an unclosed quote runs to the end.
_VALUE = (r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\\.|[^\s&;,'\"\\])+"
          r"|'(?:[^'\\]|\\.)*|\"(?:[^\"\\]|\\.)*")
# `password=value`, `PGPASSWORD='value'`, `?sslpassword=value&`, `"password": "value"`.
_KEY_VALUE = re.compile(
    r"(?P<key>[\"']?\b[A-Za-z0-9_\-]*(?:pass(?:word|wd)?|pwd)[A-Za-z0-9_\-]*\b[\"']?)"
    r"(?P<sep>\s*=\s*|\s*:\s*(?=[\"']))"
    rf"(?P<value>{_VALUE})",
    re.IGNORECASE)



def passwords_of(url: str) -> set[str]:
    """The password in `url`'s userinfo, as written (percent-encoded or not). A URL may
    be wrong and its password still a secret: an unencoded `@` in it (the userinfo runs
    to the last `@` of the authority), an unencoded `/` (then to the first `@`)."""
    rest = url.strip().partition("://")[2]
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        userinfo = authority.rpartition("@")[0]
    else:
        userinfo = rest.partition("@")[0] if "@" in rest else ""
    password = userinfo.partition(":")[2] if ":" in userinfo else ""
    return {password} if password else set()


def spellings(secret: str) -> set[str]:
    """`secret` as a driver, a URL or a shell might echo it."""
    found = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    for decode in (unquote, unquote_plus):
        found.add(decode(secret))
    return {s for s in found if s}


def _url_secrets(url: str) -> set[str]:
    found = {url.strip()}
    for password in passwords_of(url):
        found |= spellings(password)
    for match in _KEY_VALUE.finditer(url):
        value = match.group("value").strip("'\"")
        if value:
            found |= spellings(value)
    return {s for s in found if s}


def scrub_patterns(text: str) -> str:
    """`text` without URL passwords and password keys' values, whatever their origin."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}{MASK}", text)


def scrub(text: str, *urls: str) -> str:
    """`text` without the secrets of `urls` (the URLs whole and their passwords, in any
    spelling) and without any password the patterns recognise."""
    return Scrubber(urls).scrub(text)


class Scrubber:
    """Remembers the secrets the operator read and removes them from any text.

    Shared by the threads that read Secrets and those that write messages: `learn`
    swaps in a new ordered tuple under a lock, and `scrub` reads whichever tuple is
    current, never a structure being changed."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[str, None] = OrderedDict()
        # Whole URLs first, then the longest passwords: a short secret inside a long
        # one must not leave the rest of the long one behind.
        self._longest_first: tuple[str, ...] = ()
        for url in urls:
            self.learn(url)

    def learn(self, url: str) -> None:
        """Remember the secrets of a URL (or of any secret value) read from a Secret."""
        secrets = _url_secrets(url)
        with self._lock:
            new = [s for s in secrets if s not in self._known]
            for secret in secrets:
                self._known[secret] = None
                self._known.move_to_end(secret)
            while len(self._known) > MAX_SECRETS:
                self._known.popitem(last=False)
                new.append("")  # forgotten: the order changes too
            if new:
                self._longest_first = tuple(sorted(self._known, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, MASK)
        return scrub_patterns(text)

    __call__ = scrub

    def scrub_json(self, value: Any) -> Any:
        """Every string in a JSON-like value scrubbed (dictionary keys included)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub_json(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub_json(v) for v in value]
        return value


class ScrubbingFilter(logging.Filter):
    """Scrubs each log record before any handler sees it: its message, its arguments
    and its traceback. On Kopf's object logger this runs before Kopf turns the record
    into a Kubernetes Event."""

    def __init__(self, scrubber: Scrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep its parts
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.scrubber.scrub(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # formatters would print it afresh, unscrubbed
        if record.exc_text:
            record.exc_text = self.scrubber.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrubber.scrub(record.stack_info)
        return True
