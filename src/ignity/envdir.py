"""The container's environment: merge ``envs/*`` dotenv files, write and read envdirs (SPEC §4).

An envdir holds one file per variable, named after it, with the value and one newline. Reading
one: the content minus one trailing newline is the value, an empty file unsets the variable,
names that are not valid variable names are skipped. python-dotenv is imported only here.
"""

from __future__ import annotations

import os

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable, Iterable, Mapping

_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"  # not `string`: it imports re
_NAME_FIRST = frozenset(_LETTERS)
_NAME_REST = frozenset(_LETTERS + "0123456789")


def valid_name(name: str) -> bool:
    """A shell variable name: [A-Za-z_][A-Za-z0-9_]* (no ``re``: it costs ~3 ms at start-up)."""
    return bool(name) and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)


def merge_files(files: Iterable[str], container: Mapping[str, str]) -> dict[str, str]:
    """The environment after reading dotenv ``files`` in order over ``container``.

    A later file wins over an earlier one, the container wins over every file, and ``${VAR}``
    sees the container's environment and everything read before it (SPEC §11.3). A line
    python-dotenv cannot parse is a ConfigError naming file and line (SPEC §11.2).
    """
    from_files: dict[str, str] = {}
    for path in files:
        for key, expand in _bindings(path):
            from_files[key] = expand({**from_files, **container})
    return {**from_files, **container}


def service_env(base: Mapping[str, str], service_dir: str) -> Mapping[str, str]:
    """What a service's processes get: ``base`` (the container's merged environment) with the
    servicedir's own ``env`` laid over it, for that service only. ``env`` is either an envdir (s6
    format: a file per variable, an empty file unsets it) or a dotenv file (its ``${VAR}`` sees
    ``base`` and the lines before). Errors name file and line, as for envs/ (ConfigError).
    Without ``env``, ``base`` itself (a batch of spawns with one mapping encodes it once)."""
    path = os.path.join(service_dir, "env")
    if os.path.isdir(path):
        return overlay(base, path)
    if not os.path.lexists(path):
        return base
    env = dict(base)
    for key, expand in _bindings(path):
        env[key] = expand(env)
    return env


def _bindings(path: str) -> list[tuple[str, Callable[[Mapping[str, str]], str]]]:
    """The ``KEY=value`` lines of a dotenv file, each with a function expanding its ``${VAR}``s
    against a look-up table; ConfigError naming file and line for a line that is not one."""
    from dotenv.parser import parse_stream  # python-dotenv costs ~10 ms: only when files exist
    from dotenv.variables import parse_variables

    try:
        with open(path, encoding="utf-8") as stream:
            bindings = list(parse_stream(stream))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"unable to read env file {path}: {e}") from None
    out = []
    for b in bindings:
        if b.error:
            raw = b.original.string
            # python-dotenv counts from the blank lines before the statement
            line = b.original.line + raw[:len(raw) - len(raw.lstrip())].count("\n")
            text = raw.strip().splitlines()
            raise ConfigError(f"env file {path} line {line}: cannot parse "
                              f"{(text[0] if text else '')[:80]!r}")
        if b.key is None or b.value is None:
            continue  # a comment, a blank line, or a bare KEY without '='
        if not valid_name(b.key):
            raise ConfigError(f"env file {path} line {b.original.line}: "
                              f"{b.key!r} is not a valid variable name")
        atoms = list(parse_variables(b.value))
        out.append((b.key, lambda lookup, atoms=atoms: "".join(atom.resolve(lookup) for atom in atoms)))
    return out


def write(envdir: str, env: Mapping[str, str], shared: bool = False) -> None:
    """Write ``env`` as an envdir: 0700/0600, or 0755/0644 when ``shared`` (IGNITY_ENVS_MODE)."""
    dmode, fmode = (0o755, 0o644) if shared else (0o700, 0o600)
    os.mkdir(envdir, dmode)
    os.chmod(envdir, dmode)  # mkdir's mode went through the umask
    for name, value in env.items():
        if not valid_name(name):
            continue
        fd = os.open(os.path.join(envdir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, fmode)
        try:
            if shared:  # 0644 may have lost bits to the umask; 0600 cannot lose any that matter
                os.fchmod(fd, fmode)
            os.write(fd, value.encode("utf-8", "surrogateescape") + b"\n")
        finally:
            os.close(fd)


def read(envdir: str) -> dict[str, str | None]:
    """The envdir's variables: name -> value, or None for an empty file (unset)."""
    out: dict[str, str | None] = {}
    try:
        names = os.listdir(envdir)
    except OSError:
        return out
    for name in names:
        if not valid_name(name):
            continue
        try:
            data = _read_small(os.path.join(envdir, name))
        except OSError:
            continue  # a directory, or a file removed meanwhile: not a variable
        if not data:
            out[name] = None
            continue
        if data.endswith(b"\n"):
            data = data[:-1]
        # a NUL cannot be in an environment variable: keep what comes before it (s6-envdir)
        out[name] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return out


def has_links(envdir: str) -> bool:
    """Whether the envdir holds a symbolic link (its target may change without the envdir
    changing). One pass over the directory's entries, no stat: their type comes with them."""
    try:
        with os.scandir(envdir) as entries:
            return any(entry.is_symlink() for entry in entries)
    except OSError:
        return True


def _read_small(path: str) -> bytes:
    """A whole small file with open/read/close only: read at every spawn, for every variable, so
    the buffered ``open()``'s extra system calls (fstat, ioctl, lseek) add up."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def overlay(base: Mapping[str, str], envdir: str) -> dict[str, str]:
    """``base`` with the envdir laid over it: what every child of ignity and with-env gets."""
    env = dict(base)
    for name, value in read(envdir).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
