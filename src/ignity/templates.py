"""``templates/``: configuration files rendered from the merged environment at boot (stage 2, before
perms), each to the same path under the root (``/``, or ``IGNITY_TEMPLATES_ROOT``) with a final
``.j2`` removed: ``templates/etc/nginx/conf.d/app.conf.j2`` -> ``/etc/nginx/conf.d/app.conf``.

Every template is rendered before anything is written, so a mistake in one stops the boot (exit
100, naming template and line) with no target half updated. A target is replaced atomically (a
temporary file in its directory renamed over it), keeps the owner and mode it had, and is not
touched at all when it already holds the rendered text: an image whose files were rendered at
build time boots on a read-only root file system.

Runs inside PID 1: never starts a process. Jinja2 comes through ``render``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping

from . import log, render
from .confdir import visible_names
from .errors import ConfigError

SUFFIX = ".j2"
NEW_DIR_MODE = 0o755  # directories a target needs that do not exist yet (as mkdir -p)


def template_files(templates_dir: str) -> list[tuple[str, str]]:
    """(path of each template, its path relative to ``templates_dir``), depth first in byte order
    of the names; names starting with '.' are left out at every level (SPEC §2)."""
    out: list[tuple[str, str]] = []

    def walk(directory: str, relative: str) -> None:
        for name in visible_names(directory):
            path, rel = os.path.join(directory, name), os.path.join(relative, name)
            if os.path.isdir(path):
                walk(path, rel)
            elif os.path.isfile(path):
                out.append((path, rel))
            else:
                log.warn(f"template {path} is not a regular file: skipped")

    walk(templates_dir, "")
    return out


def target_of(relative: str, root: str) -> str:
    """Where the template at ``relative`` (inside templates/) is written under ``root``."""
    if relative.endswith(SUFFIX) and len(os.path.basename(relative)) > len(SUFFIX):
        relative = relative[:-len(SUFFIX)]
    return os.path.join(root, relative)


def render_file(path: str, env: Mapping[str, str]) -> str:
    """One template rendered with ``env``; ConfigError naming ``path:line`` on any mistake."""
    try:
        with open(path, "rb") as f:
            source = f.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"template {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"unable to read template {path}: {e.strerror}") from None
    return render.render(source, env, lambda line: f"template {path}:{line}")


def render_dir(templates_dir: str, root: str, env: Mapping[str, str]) -> int:
    """Render every template of ``templates_dir`` and write the targets under ``root``; the number
    of targets written (those already up to date are not). ConfigError on the first problem."""
    rendered = []
    for path, relative in template_files(templates_dir):
        rendered.append((path, target_of(relative, root), render_file(path, env)))
    written = 0
    for path, target, text in rendered:
        if write(target, text.encode("utf-8"), _mode_of(path)):
            written += 1
            log.info(f"template {path}: wrote {target}")
    return written


def _mode_of(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o644


def write(target: str, data: bytes, new_mode: int) -> bool:
    """Replace ``target`` by ``data`` atomically; False (nothing done) when it holds that already.

    An existing target keeps its owner and mode; a new one gets ``new_mode`` (the template's, so an
    executable template gives an executable file) and ignity's user. A target that is a symbolic
    link is written where the link points, as a shell's ``>`` would."""
    target = os.path.realpath(target)
    try:
        st: os.stat_result | None = os.stat(target)
        if _content(target) == data:
            return False
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise ConfigError(_write_error(target, e)) from None
    directory, name = os.path.split(target)
    temp = os.path.join(directory, f".{name}.ignity-{os.getpid()}")
    try:
        os.makedirs(directory, NEW_DIR_MODE, exist_ok=True)
        fd = _create(temp)
        try:
            mode = new_mode
            if st is not None:
                mode = stat.S_IMODE(st.st_mode)
                _keep_owner(fd, st, target)
            os.fchmod(fd, mode)  # after fchown, which clears set-id bits
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            # no fsync: the targets are made again at every boot, so a crash just after can lose
            # nothing that the next boot would not write again
        finally:
            os.close(fd)
        os.replace(temp, target)
    except OSError as e:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise ConfigError(_write_error(target, e)) from None
    return True


def _content(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None  # unreadable (a directory, no permission): written over, or the write says why


def _create(temp: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        return os.open(temp, flags, 0o600)
    except FileExistsError:
        os.unlink(temp)  # left by an ignity of the same pid that died mid-write: stale
        return os.open(temp, flags, 0o600)


def _keep_owner(fd: int, st: os.stat_result, target: str) -> None:
    if (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()):
        return
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
    except PermissionError:
        log.warn(f"template target {target}: unable to keep its owner {st.st_uid}:{st.st_gid} "
                 f"(ignity runs as uid {os.geteuid()}): now owned by {os.geteuid()}:{os.getegid()}")


def _write_error(target: str, e: OSError) -> str:
    message = f"unable to write {target}: {e.strerror}"
    if e.errno == errno.EROFS:
        message += (" (a read-only file system: render it at image build time with `ignity render`, "
                    "mount a writable volume there, or set IGNITY_TEMPLATES_ROOT)")
    elif e.errno in (errno.EACCES, errno.EPERM):
        message += (f" (ignity runs as uid {os.geteuid()}: give it the file at image build time, "
                    "e.g. perms/ and preboot)")
    return message
