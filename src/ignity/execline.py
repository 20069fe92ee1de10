"""execline's lexer, for s6-rc ``up``/``down`` files and ``#!/command/execlineb`` scripts.

An s6-rc ``up`` file is one execline command line: in practice a program and its arguments. This
module turns that text into an argv with execlineb's own word rules, so an image needs no
execline to run it:

- words are separated by whitespace; ``#`` at the start of a word comments out the rest of the line;
- ``"..."`` quotes (it may sit inside a word: ``a"b c"d`` is one word); inside quotes a backslash
  starts an escape: ``\\a \\b \\t \\n \\v \\f \\r``, ``\\0ooo`` (octal), ``\\0xhh`` (hex),
  ``\\ddd`` (decimal), a backslash-newline vanishes, any other character stands for itself;
- outside quotes a backslash takes the next character literally (between words a
  backslash-newline is nothing);
- a lone ``{`` or ``}`` opens or closes a block (``{x`` is an ordinary word); single quotes and
  ``$`` mean nothing to execlineb (``$`` is substituted only under ``-S``/``-s``).

A script with a block is more than one command (``if { mkdir -p /x } chown ...``): ``command_line``
refuses it. ``chain`` also takes the most common form of those, a chain of ``if`` and
``foreground`` blocks of one command each ending in one command (s6-overlay's own README writes
its oneshot ``up`` files so); for anything more the caller runs a real execlineb or says which
package to install.

This module is pure: no process, no file system, no other ignity module.
"""

from __future__ import annotations

WHITESPACE = " \t\n\r\v\f"
C_ESCAPES = {"a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r"}
OPEN, CLOSE = object(), object()  # block markers in a token list


class ExeclineError(ValueError):
    """The text is not valid execline (execlineb exits 100 on it)."""


class NotOneCommand(ValueError):
    """Valid execline, but more than the single-command form (blocks): needs execlineb."""


def tokens(text: str) -> list:
    """The words of ``text`` (str) with ``OPEN``/``CLOSE`` markers for unquoted lone braces."""
    out: list = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in WHITESPACE:
            i += 1
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c in "{}" and (i + 1 == n or text[i + 1] in WHITESPACE):
            out.append(OPEN if c == "{" else CLOSE)
            i += 1
            continue
        word, i, started = _word(text, i)
        if started:
            out.append(word)
    return out


def _word(text: str, i: int) -> tuple[str, int, bool]:
    """One word from ``text[i]`` on: (word, index after it, whether a word was started at all:
    a lone backslash-newline between words is no word)."""
    chars: list[str] = []
    started = False
    n = len(text)
    while i < n:
        c = text[i]
        if c in WHITESPACE:
            break
        if c == "\\":
            if i + 1 == n:
                raise ExeclineError("backslash at the end of the text")
            if text[i + 1] != "\n" or started:  # between words a backslash-newline is nothing
                chars.append(text[i + 1])
                started = True
            i += 2
            continue
        if c == '"':
            quoted, i = _quoted(text, i + 1)
            chars.append(quoted)
            started = True
            continue
        chars.append(c)
        started = True
        i += 1
    return "".join(chars), i, started


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The inside of a double-quoted string starting at ``text[i]``; index after the closing quote."""
    chars: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(chars), i + 1
        if c != "\\":
            chars.append(c)
            i += 1
            continue
        if i + 1 == n:
            break
        e = text[i + 1]
        i += 2
        if e == "\n":
            continue
        if e in C_ESCAPES:
            chars.append(C_ESCAPES[e])
        elif e == "0" and text[i:i + 1] in ("x", "X"):
            digits = _digits(text, i + 1, "0123456789abcdefABCDEF", 2)
            if not digits:
                raise ExeclineError("\\0x needs a hexadecimal digit")
            chars.append(_char(int(digits, 16)))
            i += 1 + len(digits)
        elif e == "0":
            digits = _digits(text, i, "01234567", 3)
            if not digits:
                raise ExeclineError("\\0 needs an octal digit (a NUL cannot be in an argument)")
            chars.append(_char(int(digits, 8)))
            i += len(digits)
        elif e in "123456789":
            digits = e + _digits(text, i, "0123456789", 2)
            chars.append(_char(int(digits)))
            i += len(digits) - 1
        else:
            chars.append(e)
    raise ExeclineError("unterminated double quote")


def _digits(text: str, i: int, allowed: str, most: int) -> str:
    j = i
    while j < len(text) and j - i < most and text[j] in allowed:
        j += 1
    return text[i:j]


def _char(code: int) -> str:
    """One byte of an argument; bytes above 127 as os.fsdecode would have them."""
    if code == 0 or code > 255:
        raise ExeclineError(f"escape for byte {code}: not possible in an argument")
    return bytes([code]).decode("utf-8", "surrogateescape")


def parse(text: str) -> list:
    """Words and nested blocks (lists), as execlineb reads them; ExeclineError on a brace that
    does not match."""
    stack: list[list] = [[]]
    for token in tokens(text):
        if token is OPEN:
            stack.append([])
        elif token is CLOSE:
            if len(stack) == 1:
                raise ExeclineError("unmatched }")
            block = stack.pop()
            stack[-1].append(block)
        else:
            stack[-1].append(token)
    if len(stack) != 1:
        raise ExeclineError("unmatched {")
    return stack[0]


def command_line(text: str) -> list[str]:
    """The argv of a single-command execline text: ExeclineError if it is not execline,
    NotOneCommand if it holds a block (several commands). An empty argv means "do nothing"
    (execlineb exits 0)."""
    parsed = parse(text)
    if any(isinstance(item, list) for item in parsed):
        raise NotOneCommand("it holds a { block }: more than one command")
    return parsed


CHAIN = ("if", "foreground")
IF_FLAGS = ("-n", "-t")


def chain(text: str) -> tuple[list[tuple[str, frozenset, list[str]]], list[str]]:
    """``if [-n] [-t] { cmd } ...`` and ``foreground { cmd } ...`` steps, then the last command:
    (steps as (program, flags, argv), final argv). NotOneCommand for any other use of blocks."""
    items = parse(text)
    steps: list[tuple[str, frozenset, list[str]]] = []
    while items and items[0] in CHAIN:
        program, i, flags = items[0], 1, set()
        while program == "if" and i < len(items) and items[i] in IF_FLAGS:
            flags.add(items[i])
            i += 1
        if i == len(items) or not isinstance(items[i], list):
            raise NotOneCommand(f"{program} with options or without a block")
        if any(isinstance(word, list) for word in items[i]):
            raise NotOneCommand("nested blocks")
        steps.append((program, frozenset(flags), items[i]))
        items = items[i + 1:]
    if any(isinstance(item, list) for item in items):
        raise NotOneCommand(f"a block after {items[0]!r}" if items else "a lone block")
    return steps, items


def strip_shebang(text: str) -> tuple[list[str], str]:
    """``#!/command/execlineb -P`` scripts: (the options on the shebang line, the script). The
    kernel passes everything after the interpreter as one argument, so options are read here."""
    if not text.startswith("#!"):
        return [], text
    first, _, rest = text.partition("\n")
    words = first[2:].split()
    return words[1:], rest
