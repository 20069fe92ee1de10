"""logformat: lines out of a byte stream (cut and marked when too long), timestamps, prefixes."""
import re
import time

from ignity import logformat
from ignity.logformat import CUT_MARK, LINE_MAX_BYTES, Framer, head, render


def test_tai64n_is_s6_log_label():
    # 2026-11-28T00:00:00Z = 1795824000 s; TAI64 = 2^62 + 37 + seconds
    label = logformat.tai64n(1795824000 * 10**9 + 5)
    assert label == b"@" + b"%016x%08x" % ((1 << 62) + 37 + 1795824000, 5)
    assert re.fullmatch(rb"@4[0-9a-f]{23}", label)


def test_iso_is_utc_with_microseconds():
    assert logformat.iso(1795824000 * 10**9 + 123456789) == b"2026-11-28T00:00:00.123456Z"


def test_head_and_render():
    ns = time.time_ns()
    assert head("none", b"[web] ", ns) == b"[web] "
    assert head("iso", b"", ns).endswith(b"Z ")
    assert head("tai64n", b"p ", ns).startswith(b"@4") and head("tai64n", b"p ", ns).endswith(b" p ")
    assert render([b"a", b"", b"c"], b"") == b"a\n\nc\n"
    assert render([b"a", b"b"], b"> ") == b"> a\n> b\n"


def test_lines_across_chunks():
    f = Framer()
    assert f.feed(b"one\ntw") == [b"one"]
    assert f.feed(b"o") == []
    assert f.feed(b"\nthree\n\nfo") == [b"two", b"three", b""]
    assert f.flush() == [b"fo"]
    assert f.flush() == []


def test_long_line_is_cut_and_marked_whole_or_in_pieces():
    line = bytes(range(97, 123)) * 1000  # 26 000 bytes
    pieces = Framer().feed(line + b"\n")
    assert [len(p) for p in pieces] == [LINE_MAX_BYTES + len(CUT_MARK)] * 3 + [26000 - 3 * LINE_MAX_BYTES]
    assert b"".join(p[:-len(CUT_MARK)] for p in pieces[:-1]) + pieces[-1] == line
    # the same line arriving in small chunks is cut at the same places, never held beyond the limit
    f = Framer()
    got = []
    for i in range(0, len(line), 1000):
        got += f.feed(line[i:i + 1000])
        assert len(f.partial) <= LINE_MAX_BYTES
    got += f.feed(b"\n")
    assert got == pieces


def test_line_of_exactly_the_limit_is_not_cut():
    f = Framer()
    assert f.feed(b"x" * LINE_MAX_BYTES) == []
    assert f.feed(b"\n") == [b"x" * LINE_MAX_BYTES]


def test_json_lines_escape_every_line_whatever_it_holds():
    import json

    lines = [b'x",', b"next", b"\\", b"\x01\t", "\u00e9".encode(), b"\xff", b""]
    out = logformat.renderer("json", "iso", b"[web] ", "web", 1795824000 * 10**9)(lines)
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["line"] for o in objects] == [line.decode("utf-8", "replace") for line in lines]
    assert objects[0] == {"time": "2026-11-28T00:00:00.000000Z", "service": "web", "line": 'x",'}
    assert logformat.renderer("json", "none", b"", "", 0)([b"a"]) == b'{"line":"a"}\n'


def test_text_renderer_is_head_and_render():
    assert logformat.renderer("text", "none", b"[a] ", "a", 0)([b"x", b"y"]) == b"[a] x\n[a] y\n"
