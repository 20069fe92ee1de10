"""The lines of a log: a byte stream cut into lines, and what goes before each line.

A line is written as ``TIMESTAMP PREFIXline`` (the timestamp and its space only when on). Pure:
no OS call but the clock, so that the built-in logger and ``ignity log`` share it and the unit
tests need no process.

Speed: a service can write hundreds of MB/s. Lines are never handled one by one in Python on the
way through: one read gives a list of lines (``bytes.split``), one timestamp (every line of a
read arrived at the same moment) and one ``bytes.join``; the per-byte work is in C.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable

# s6-log's default line limit: a longer line is cut into pieces of this many bytes, each piece but
# the last followed by CUT_MARK, so a line is never split across two files nor held unbounded
LINE_MAX_BYTES = 8192
CUT_MARK = b" [cut]"

TIMESTAMPS = ("none", "iso", "tai64n")
FORMATS = ("text", "json")
# TAI64N labels count TAI seconds from 2^62 (D. J. Bernstein's libtai). TAI is ahead of UTC by 10 s
# plus the leap seconds since 1972: 27, none since 2017-01-01. s6-log (skalibs) counts the same.
TAI64_BASE = 1 << 62
TAI_MINUS_UTC_S = 37


def tai64n(ns: int) -> bytes:
    """``@`` and 24 hex digits: the TAI64N label of ``ns`` (nanoseconds since the Unix epoch)."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return b"@%016x%08x" % (TAI64_BASE + TAI_MINUS_UTC_S + seconds, nanos)


def iso(ns: int) -> bytes:
    """UTC with microseconds: ``2026-11-28T07:50:00.123456Z``."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%06dZ" % (nanos // 1000)


_STAMPERS = {"iso": iso, "tai64n": tai64n}


def head(timestamp: str, prefix: bytes, ns: int) -> bytes:
    """What goes before every line read at ``ns``: the timestamp and a space (unless ``none``),
    then the prefix."""
    stamper = _STAMPERS.get(timestamp)
    return prefix if stamper is None else stamper(ns) + b" " + prefix


def render(lines: list[bytes], line_head: bytes) -> bytes:
    """The lines (without their newlines) as written: ``line_head`` before each, a newline after."""
    if not line_head:
        return b"\n".join(lines) + b"\n"
    return line_head + (b"\n" + line_head).join(lines) + b"\n"


def renderer(fmt: str, timestamp: str, prefix: bytes, name: str, ns: int) -> Callable[[list[bytes]], bytes]:
    """How the lines of one read are written: ``text`` (``TIMESTAMP PREFIXline``) or ``json``
    (``{"time": ..., "service": NAME, "line": ...}``, one object a line; ``time`` only when
    timestamps are on, ``service`` only with a name; the prefix is not used)."""
    if fmt != "json":
        line_head = head(timestamp, prefix, ns)
        return lambda lines: render(lines, line_head)
    import json  # only for logs that ask for JSON: not on the path of `ignity init`
    from json.encoder import encode_basestring  # the C escaper: no Python call per line

    stamper = _STAMPERS.get(timestamp)
    start = "{"
    if stamper is not None:
        start += '"time":' + json.dumps(stamper(ns).decode()) + ","
    if name:
        start += '"service":' + json.dumps(name, ensure_ascii=False) + ","
    start_b = (start + '"line":').encode()
    sep = b"}\n" + start_b

    def render_json(lines: list[bytes]) -> bytes:
        texts = map(encode_basestring, (line.decode("utf-8", "replace") for line in lines))
        return start_b + sep.join(text.encode() for text in texts) + b"}\n"

    return render_json


def _pieces(data: bytes) -> list[bytes]:
    return [data[i:i + LINE_MAX_BYTES] for i in range(0, len(data), LINE_MAX_BYTES)]


def _cut(line: bytes) -> list[bytes]:
    pieces = _pieces(line)
    return [piece + CUT_MARK for piece in pieces[:-1]] + pieces[-1:]


class Framer:
    """Turns chunks of a byte stream into complete lines. What follows the last newline waits for
    the next chunk (at most LINE_MAX_BYTES of it: beyond that it comes out as cut pieces)."""

    __slots__ = ("partial",)

    def __init__(self) -> None:
        self.partial = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The lines completed by ``data``, without their newlines, in order."""
        lines = data.split(b"\n")
        rest = lines.pop()
        if lines and self.partial:
            lines[0] = self.partial + lines[0]
            self.partial = b""
        if rest:
            self.partial += rest
        if lines and max(map(len, lines)) > LINE_MAX_BYTES:
            lines = [piece for line in lines for piece in _cut(line)]
        if len(self.partial) > LINE_MAX_BYTES:
            # a line that has not ended and is already too long: its full pieces go out now
            keep = len(self.partial) - (len(self.partial) - 1) % LINE_MAX_BYTES - 1
            pieces, self.partial = self.partial[:keep], self.partial[keep:]
            lines.extend(piece + CUT_MARK for piece in _pieces(pieces))
        return lines

    def flush(self) -> list[bytes]:
        """The unfinished last line, if any, as a line of its own (end of input, shutdown)."""
        partial, self.partial = self.partial, b""
        return [partial] if partial else []
