"""Nothing secret leaves the operator, and nothing one tenant wrote garbles another's text
(pure).

Scrubbing touches free text only: condition and migration messages, Event notes, log
records, and the termination messages the operator quotes. Keys, names, reasons, status
values and timestamps are never rewritten.

Two kinds of secret are removed:

- what any text may carry, wherever it stands: the password of any URL
  (`scheme://user:PASSWORD@...`); the value of any password key, as libpq DSNs, URL
  queries, shell traces (`+ export PGPASSWORD=...`), JSON (`"password": "..."`), YAML
  (`password: ...`) and SQL (`PASSWORD '...'`) write it; and the value of `*_TOKEN=` and
  `*_SECRET*=` (`GITHUB_TOKEN=`, `AWS_SECRET_ACCESS_KEY=`, `CLIENT_SECRET=`);
- what one DatabaseSchema's Secret holds: its `Scrubber` learns that URL, and masks it
  whole and its password in any percent-encoding, in the text about that schema only
  (`Scrubbers`): one tenant's password `2026` never touches another tenant's text.

Every scan here is linear in the text: `str.find`, `str.translate`, and regular
expressions made of one character class each, so nothing can backtrack.
"""

from __future__ import annotations

import logging
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
#: Secrets one schema's scrubber remembers (the spellings of a few URLs: a rotated
#: password may still show in the output of a Job started before); the oldest go first.
MAX_SECRETS = 64

# One character class each: a match can only grow, never be tried again shorter.
_TOKEN_REST = re.compile(r"[^\s'\"<>]*")   # a URL runs to a blank, a quote or <>
_USER = re.compile(r"[^\s:/@'\"<>]*")      # a URL's user name
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_KEY_FRAGMENT = re.compile(r"pass|pwd|secret|token", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9_\-]*")
#: The longest key read (`AWS_SECRET_ACCESS_KEY` is 21 characters).
MAX_KEY = 64
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_BLANKS = re.compile(r"[ \t]*")
_BARE = re.compile(r"[^\s&;,'\"\\]+")
_IN_QUOTES = {"'": re.compile(r"[^'\\]*"), '"': re.compile(r'[^"\\]*')}
# A line's end: a newline, or one already escaped (`\\n`): a message is scrubbed where it is
# made and again where it leaves, escaped in between.
_LINE = re.compile(r"(?:[^\r\n\\]|\\(?![nr]))*")
_TRIPLETS = re.compile(r"(?:%[0-9A-Fa-f]{2})+")  # fixed-width steps: one way to match
# The words of a key that holds a password whatever follows it (`password: x`,
# `PASSWORD 'x'`); a key merely containing "pass" (`passed:`) needs `=`.
_PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "secret"})


# Control characters: escaped, so a tenant's name or output cannot forge a log line or
# drive a terminal (newline, CR, ESC, the other C0 and C1 characters, DEL, and Unicode's
# line and paragraph separators).
def _escape(code: int) -> str:
    named = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
    return named.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_CONTROLS = {code: _escape(code)
             for code in [*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]}
# In a traceback, newlines are the operator's own layout.
_CONTROLS_BUT_NEWLINE = {code: text for code, text in _CONTROLS.items() if code != 0x0A}


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control character written as a visible escape (`\\n`, `\\x1b`)."""
    return text.translate(_CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS)


# Pattern scrubbing: what any text may carry.

def _url_passwords(text: str) -> Iterator[tuple[int, int]]:
    """The spans of the passwords of `scheme://user:password@`: the password runs to the
    last `@` before a blank or a quote, as a URL parser reads it. Each run of text
    between blanks is read once, however many `://` it holds."""
    start, token_end, last_at = 0, -1, -1
    while (sep := text.find("://", start)) != -1:
        start = sep + 3
        if sep >= token_end:  # a new run: where it ends, and its last `@`
            token_end = _TOKEN_REST.match(text, sep).end()  # type: ignore[union-attr]
            last_at = text.rfind("@", sep, token_end)
        if last_at < sep:  # no `@` after this `://`: none after any later one in the run
            start = max(start, token_end)
            continue
        user_end = _USER.match(text, sep + 3).end()  # type: ignore[union-attr]
        if not (_has_scheme(text, sep) and user_end < last_at and text[user_end] == ":"):
            continue
        yield user_end + 1, last_at
        start = last_at + 1


def _has_scheme(text: str, sep: int) -> bool:
    """Whether a URL scheme stands right before `sep` (scheme characters stop at the
    previous `://`, so the text is read backwards once in all)."""
    i = sep
    while i > 0 and text[i - 1] in _SCHEME_CHARS:
        i -= 1
    return any(c.isalpha() for c in text[i:sep])


def _key_values(text: str) -> Iterator[tuple[int, int]]:
    """The spans of the values of password, token and secret keys."""
    start = 0
    while (found := _KEY_FRAGMENT.search(text, start)) is not None:
        start_of_scan, word_start, word_end = start, found.start(), found.end()
        word_end = _WORD.match(text, word_end).end()  # type: ignore[union-attr]
        start = word_end
        # A key is short: a longer word is read no further back than this.
        limit = max(start_of_scan, word_start - MAX_KEY)
        while word_start > limit and text[word_start - 1] in _WORD_CHARS:
            word_start -= 1
        if word_end - word_start > MAX_KEY or (
                word_start > start_of_scan and text[word_start - 1] in _WORD_CHARS):
            continue  # a longer word: no key
        span = _value_after(text, text[word_start:word_end].lower(), word_end)
        if span is not None:
            yield span
            start = max(start, span[1])


def _value_after(text: str, key: str, i: int) -> tuple[int, int] | None:
    if not _is_secret_key(key):
        return None
    strict = _is_password_key(key)
    if i < len(text) and text[i] in "'\"":  # the closing quote of a JSON key
        i += 1
    after_key = i
    i = _BLANKS.match(text, i).end()  # type: ignore[union-attr]
    sep = text[i:i + 1]
    if sep in ("=", ":"):
        value = _BLANKS.match(text, i + 1).end()  # type: ignore[union-attr]
        quoted = text[value:value + 1] in ("'", '"')
        if sep == "=" or quoted:
            end = _value_end(text, value)
        elif strict and value > i + 1:  # YAML's `password: x` runs to the line's end
            end = _LINE.match(text, value).end()  # type: ignore[union-attr]
            end = min(end, _comment(text, value, end))
        else:
            return None
    elif strict and i > after_key and sep in ("'", '"'):  # SQL's PASSWORD 'x'
        value = i
        end = _value_end(text, value)
    else:
        return None
    return (value, end) if end > value else None


def _is_secret_key(key: str) -> bool:
    return "pass" in key or "pwd" in key or "secret" in key or key.endswith("token")


def _is_password_key(key: str) -> bool:
    words = key.replace("-", "_").split("_")
    return any(w in _PASSWORD_WORDS or w.endswith(("password", "passwd")) for w in words)


def _comment(text: str, start: int, end: int) -> int:
    at = text.find(" #", start, end)
    return end if at == -1 else at


def _value_end(text: str, i: int) -> int:
    """Where a value starting at `i` ends: quoted as libpq writes it ('it\\'s'), as a
    shell does ('it'\\''s'), as JSON does ("it's"), or bare up to a blank or a separator;
    an unclosed quote runs to the end."""
    n = len(text)
    while i < n:
        c = text[i]
        if c in _IN_QUOTES:
            i = _closing_quote(text, i + 1, c)
            if text[i:i + 1] in ("}", "]", ")"):  # the end of a JSON object or a list
                break
        elif c == "\\":
            if text[i + 1:i + 2] in ("n", "r"):  # a line's end, escaped by an earlier pass
                break
            i += 2
        elif (bare := _BARE.match(text, i)) is not None:
            i = bare.end()
        else:  # a blank or a separator
            break
    return min(i, n)


def _closing_quote(text: str, i: int, quote_char: str) -> int:
    inside = _IN_QUOTES[quote_char]
    while i < len(text):
        i = inside.match(text, i).end()  # type: ignore[union-attr]
        if i >= len(text):
            break
        if text[i] == quote_char:
            return i + 1
        i += 2  # a backslash and what it escapes
    return len(text)


def scrub_patterns(text: str) -> str:
    """`text` without URL passwords and the values of password, token and secret keys,
    whatever their origin."""
    text = _masked(text, list(_url_passwords(text)))
    return _masked(text, list(_key_values(text)))


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each of `spans` (overlapping or not) replaced by one mask."""
    parts: list[str] = []
    done = 0
    for begin, end in sorted(s for s in spans if s[1] > s[0]):
        if end <= done:
            continue
        if begin > done or not parts:
            parts += [text[done:begin], MASK]
        done = end  # past the mask (an overlapping span only makes it longer)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


# What one schema's Secret holds.

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


def _secrets_of(value: str) -> tuple[set[str], set[str]]:
    """The literal spellings of a Secret's value, and its passwords decoded (to be found
    in any percent-encoding)."""
    literal, decoded = {value.strip()}, set()
    passwords = set(passwords_of(value))
    passwords |= {value[b:e].strip("'\"") for b, e in _key_values(value)}
    for password in passwords - {""}:
        literal |= spellings(password)
        decoded |= {unquote(password), unquote_plus(password)}
    return {s for s in literal if s}, {s for s in decoded if s}


def _percent_view(text: str) -> tuple[bytes, array[int]]:
    """`text` as UTF-8 with each `%XX` decoded, and where each of its bytes came from:
    a password then reads the same however it was percent-encoded."""
    view, origin = bytearray(), array("q")
    done = 0
    for run in _TRIPLETS.finditer(text):
        begin, end = run.span()
        _append_literal(view, origin, text, done, begin)
        view += bytes.fromhex(run.group().replace("%", ""))
        origin.extend(range(begin, end, 3))
        done = end
    _append_literal(view, origin, text, done, len(text))
    origin.append(len(text))
    return bytes(view), origin


def _append_literal(view: bytearray, origin: array[int], text: str, begin: int,
                    end: int) -> None:
    piece = text[begin:end]
    if piece.isascii():
        view += piece.encode()
        origin.extend(range(begin, end))
        return
    for offset, char in enumerate(piece):
        encoded = char.encode("utf-8", "surrogatepass")
        view += encoded
        origin.extend([begin + offset] * len(encoded))


def _occurrences(text: str, needle: str) -> Iterator[tuple[int, int]]:
    at = text.find(needle)
    while at != -1:
        yield at, at + len(needle)
        at = text.find(needle, at + len(needle))


class Scrubber:
    """One schema's secrets (the URLs read from its Secret), removed from the text about
    it, with every pattern besides; a Scrubber that learnt nothing removes the patterns.

    Shared by the threads that read Secrets and those that write messages: `learn`
    swaps in new tuples under a lock, and `scrub` reads whichever are current."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._known: OrderedDict[str, bool] = OrderedDict()  # secret: decoded?
        self._literal: tuple[str, ...] = ()
        self._decoded: tuple[bytes, ...] = ()
        for url in urls:
            self.learn(url)

    def learn(self, value: str) -> None:
        """Remember the secrets of a URL (or of any secret value) read from a Secret."""
        if value.strip() in self._known:
            return
        literal, decoded = _secrets_of(value)
        with self._lock:
            for secret, is_decoded in [*((s, False) for s in literal),
                                       *((s, True) for s in decoded)]:
                self._known[secret] = self._known.get(secret, False) or is_decoded
                self._known.move_to_end(secret)
            self._known[value.strip()] = self._known.get(value.strip(), False)
            self._known.move_to_end(value.strip())
            while len(self._known) > MAX_SECRETS:
                self._known.popitem(last=False)
            self._literal = tuple(self._known)
            self._decoded = tuple(s.encode("utf-8", "surrogatepass")
                                  for s, is_decoded in self._known.items() if is_decoded)

    def scrub(self, text: str) -> str:
        """`text` without this schema's secrets, in any spelling, and without any secret
        the patterns recognise."""
        return scrub_patterns(_masked(text, self._spans(text)))

    __call__ = scrub

    def scrub_tail(self, text: str) -> str:
        """`scrub` for the end of a longer text (a termination message is the log's last
        2 KiB): what precedes its first blank may be the rest of a password cut in two,
        so a known secret's end there, or anything before an `@`, is masked too."""
        spans = self._spans(text)
        lead = max((_overlap(secret, text) for secret in self._literal), default=0)
        # The end of a password ends a word: "c" of a secret is not the "c" of "connecting".
        if lead and (lead >= len(text) or not text[lead].isalnum()):
            spans.append((0, lead))
        first = _TOKEN_REST.match(text).end()  # type: ignore[union-attr]
        at = text.rfind("@", 0, first)
        if at > 0 and "://" not in text[:at]:
            spans.append((0, at))
        return scrub_patterns(_masked(text, spans))

    def message(self, text: str) -> str:
        """Free text as a person reads it: scrubbed, control characters escaped."""
        return escape_controls(self.scrub(text))

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans = [span for secret in self._literal for span in _occurrences(text, secret)]
        if self._decoded and "%" in text:
            view, origin = _percent_view(text)
            for secret in self._decoded:
                spans += [(origin[b], origin[e]) for b, e in _occurrences_bytes(view, secret)]
        return spans


def _occurrences_bytes(view: bytes, needle: bytes) -> Iterator[tuple[int, int]]:
    at = view.find(needle)
    while at != -1:
        yield at, at + len(needle)
        at = view.find(needle, at + len(needle))


def _overlap(secret: str, text: str) -> int:
    """The length of the longest end of `secret` that `text` starts with."""
    if not text:
        return 0
    at = secret.find(text[0], 1)
    while at != -1:  # from the longest end to the shortest
        if text.startswith(secret[at:]):
            return len(secret) - at
        at = secret.find(text[0], at + 1)
    return 0


def scrub(text: str, *urls: str) -> str:
    """`text` without the secrets of `urls` (the URLs whole and their passwords, in any
    spelling) and without any secret the patterns recognise."""
    return Scrubber(urls).scrub(text)


#: What text about no schema gets: the patterns alone.
PATTERNS = Scrubber()

Key = tuple[str, str]  # a DatabaseSchema's (namespace, name)


class Scrubbers:
    """Each DatabaseSchema's own Scrubber, by (namespace, name): a secret applies only to
    the text about the schemas that use it."""

    def __init__(self) -> None:
        self._by_schema: dict[Key, Scrubber] = {}

    def learn(self, key: Key, value: str) -> None:
        scrubber = self._by_schema.get(key)
        if scrubber is None:
            scrubber = self._by_schema.setdefault(key, Scrubber())
        scrubber.learn(value)

    def of(self, key: Key) -> Scrubber:
        return self._by_schema.get(key, PATTERNS)

    def forget(self, key: Key) -> None:
        self._by_schema.pop(key, None)


class ScrubbingFilter(logging.Filter):
    """Scrubs each log record before any handler sees it: its message, its arguments
    and its traceback, with the secrets of the schema it is about (`scrubber_for`), and
    escapes its control characters. On Kopf's object logger this runs before Kopf turns
    the record into a Kubernetes Event."""

    def __init__(self, scrubber_for: Callable[[logging.LogRecord], Scrubber] = lambda _: PATTERNS
                 ) -> None:
        super().__init__()
        self.scrubber_for = scrubber_for

    def filter(self, record: logging.LogRecord) -> bool:
        scrubber = self.scrubber_for(record)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep its parts
            message = f"{record.msg} {record.args}"
        record.msg, record.args = scrubber.message(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # formatters would print it afresh, unscrubbed
        if record.exc_text:
            record.exc_text = escape_controls(scrubber.scrub(record.exc_text), True)
        if record.stack_info:
            record.stack_info = escape_controls(scrubber.scrub(record.stack_info), True)
        return True
