"""The s6-overlay compatibility layer at boot: an image made for s6-overlay (or the original
ignity) runs on ignity's own model, not on a second supervisor (docs/migrating.md).

- ``/etc/fix-attrs.d/*`` are perms files (the line format is s6's), applied after ``perms/``;
- ``S6_STAGE2_HOOK``, then ``/etc/cont-init.d/*``, run before ``init/``, as s6-overlay runs them:
  all of them, a failure stopping the boot only with ``S6_BEHAVIOUR_IF_STAGE2_FAILS=2``;
- ``/etc/services.d/*`` are services, copied to ``services-state/`` beside ``services/``;
- ``/etc/s6-overlay/s6-rc.d`` longruns, oneshots and bundles become services with dependencies
  (``s6rc``), copied there too;
- ``/etc/cont-finish.d/*`` run at shutdown once the services are down, each bounded by
  ``IGNITY_KILL_FINALIZE_MAXTIME`` (``S6_KILL_FINISH_MAXTIME``);
- s6-overlay's paths are made at boot: ``/run/s6/container_environment`` (and under ``/var/run``)
  is the envdir, ``/run/service`` the live service dirs, ``/run/s6/basedir/bin/halt`` stops the
  container with the status in ``/run/s6-linux-init-container-results/exitcode``.

The compatibility is on when ``IGNITY_S6_COMPAT=1``, or when it is unset and ``install.sh
--s6-compat`` left its marker file ``$IGNITY_CONF_DIR/s6-compat`` (which names the launcher of the
s6 commands). Without it, ignity only says in one line that it sees these directories.
``IGNITY_S6_ROOT`` (default ``/``) moves every s6-overlay path under another root: for tests.

Runs inside PID 1: starts no process itself (the caller runs scripts through its loop).
"""

from __future__ import annotations

import os

from . import confdir, log
from .errors import ConfigError
from .s6detect import MARKER, root
from .s6settings import S6Settings

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `collections` costs ~1.4 ms at start-up
    from collections.abc import Callable, Mapping

HALT_NAMES = ("halt", "poweroff", "reboot")
EXITCODE_DIR = "run/s6-linux-init-container-results"

RunScript = "Callable[[str, list[str] | None], int]"  # (path for messages, argv or None) -> status


class Compat:
    """One boot's compatibility layer."""

    def __init__(self, s6: S6Settings, env: Mapping[str, str], conf_dir: str):
        self.s6 = s6
        self.root = root(env)
        base = os.path.join(self.root, "etc")
        if s6.profile:
            base = os.path.join(base, "cont-profile.d", s6.profile)
        self.etc = base
        self.launcher = _launcher(conf_dir)
        self.failed = False  # something of stage 2 failed (S6_BEHAVIOUR_IF_STAGE2_FAILS)

    def path(self, relative: str) -> str:
        return os.path.join(self.root, relative)

    def report_settings(self) -> None:
        for name in self.s6.unknown:
            log.warn(f"{name}: not an s6-overlay setting ignity knows: no effect (docs/migrating.md)")
        if self.s6.profile and not os.path.isdir(self.etc):
            log.warn(f"S6_RUNTIME_PROFILE={self.s6.profile}: no directory {self.etc}")

    # ---- stage 1: s6-overlay's runtime paths ----------------------------------------------------
    def make_links(self, envdir: str, state_dir: str) -> None:
        """s6-overlay's paths onto ignity's; each failure is one warning (a read-only /run, not root)."""
        self._link(envdir, self.path("run/s6/container_environment"))
        var_run = self.path("var/run")
        if os.path.realpath(var_run) != os.path.realpath(self.path("run")):
            self._link(envdir, os.path.join(var_run, "s6/container_environment"))
        self._link(state_dir, self.path("run/service"))
        if self.launcher:
            for name in HALT_NAMES:
                self._link(os.path.join(self.launcher, name) if os.path.isdir(self.launcher) else self.launcher,
                           self.path(f"run/s6/basedir/bin/{name}"))
        results = self.path(EXITCODE_DIR)
        try:
            os.makedirs(results, exist_ok=True)
            try:
                os.unlink(os.path.join(results, "exitcode"))  # a previous run's (container restart)
            except FileNotFoundError:
                pass
        except OSError as e:
            log.warn(f"s6 compatibility: unable to prepare {results}: {e.strerror}")

    def _link(self, target: str, path: str) -> None:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                if os.listdir(path):
                    log.warn(f"s6 compatibility: {path} is a directory that is not empty: left alone")
                    return
                os.rmdir(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".ignity-new"
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(target, tmp)
            os.replace(tmp, path)
        except OSError as e:
            log.warn(f"s6 compatibility: unable to link {path} to {target}: {e.strerror}")

    # ---- stage 2 --------------------------------------------------------------------------------
    def fix_attrs(self, apply: Callable[[list[str]], None]) -> None:
        """``/etc/fix-attrs.d``: ``apply(files)`` parses and applies them as perms files."""
        directory = os.path.join(self.etc, "fix-attrs.d")
        if self.s6.fix_attrs_hidden:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                names = []
            files = [p for p in (os.path.join(directory, n) for n in names) if os.path.isfile(p)]
        else:
            files = confdir.visible_files(directory)
        if not files:
            return
        try:
            apply(files)
        except ConfigError as e:
            self._stage2_failed(f"fix-attrs.d: {e}")

    def init_scripts(self, run: RunScript, stopping: Callable[[], bool]) -> int | None:
        """S6_STAGE2_HOOK, then /etc/cont-init.d/*: all of them, as s6-overlay. The status the
        boot must stop with (S6_BEHAVIOUR_IF_STAGE2_FAILS=2), or None to go on."""
        hook = self.s6.stage2_hook
        if hook:
            code = run("S6_STAGE2_HOOK", ["/bin/sh", "-c", hook])
            if code != 0 and self.s6.behaviour >= 2:
                log.lifecycle(f"boot stopped: S6_STAGE2_HOOK exited {code}")
                return code
            if code != 0:
                log.warn(f"S6_STAGE2_HOOK exited {code}")
        failures = 0
        for path in confdir.visible_entries(os.path.join(self.etc, "cont-init.d")):
            if stopping():
                return None
            if os.path.isdir(path):
                continue
            if run(path, None) != 0:
                failures += 1
        if failures:
            self._stage2_failed(f"{failures} script(s) of /etc/cont-init.d failed")
        return 1 if self.failed and self.s6.behaviour >= 2 else None

    def _stage2_failed(self, what: str) -> None:
        self.failed = True
        if self.s6.behaviour >= 2:
            log.lifecycle(f"{what}: stopping (S6_BEHAVIOUR_IF_STAGE2_FAILS=2)")
        else:
            log.warn(f"{what}: going on (S6_BEHAVIOUR_IF_STAGE2_FAILS={self.s6.behaviour})")

    def service_sources(self, own: str, run_dir: str) -> list[str]:
        """Where the services come from, in order: ignity's own, then /etc/services.d, then the
        s6-rc longruns and oneshots (translated into RUN_DIR/s6-rc). A name in more than one
        keeps the first (the supervisor copies them in this order), with a warning."""
        legacy = os.path.join(self.etc, "services.d")
        sources = [own, legacy]
        generated = self._s6_rc(os.path.join(run_dir, "s6-rc"), confdir.visible_dirs(legacy))
        if generated is not None:
            sources.append(generated)
        seen: dict[str, str] = {}
        for source in sources:
            for name in confdir.visible_dirs(source):
                if name in seen:
                    log.warn(f"service {name} is in both {seen[name]} and {source}: using {seen[name]}/{name}")
                else:
                    seen[name] = source
        return sources

    def _s6_rc(self, out: str, legacy: list[str]) -> str | None:
        """/etc/s6-overlay/s6-rc.d as service directories under ``out``; None when there is none."""
        base = os.path.join(self.etc, "s6-overlay")
        source = os.path.join(base, "s6-rc.d")
        bundles = self.s6.bundle_dir or os.path.join(base, "user-bundles.d")
        if not confdir.visible_names(source):
            return None
        if self.launcher is None:
            raise ConfigError(f"{source}: s6-rc oneshots need the ignity-s6 launcher: install ignity with "
                              "install.sh --s6-compat")
        from . import s6rc  # only for images that have s6-rc definitions

        try:
            os.makedirs(out)
            names = s6rc.generate(source, bundles if os.path.isdir(bundles) else None, legacy, out,
                                  self.launcher, optional_oneshots=self.s6.behaviour < 2)
        except OSError as e:
            raise ConfigError(f"unable to write the s6-rc services to {out}: {e.strerror}") from None
        log.info(f"s6-rc.d: {len(names)} services: {', '.join(names)}")
        return out

    # ---- stage 3 --------------------------------------------------------------------------------
    def finish_scripts(self, run: RunScript) -> None:
        """/etc/cont-finish.d/*, once the services are down, as s6-overlay runs them."""
        for path in confdir.visible_entries(os.path.join(self.etc, "cont-finish.d")):
            if not os.path.isdir(path):
                run(path, None)

    def exit_code(self) -> int | None:
        return read_exitcode(self.root)


def read_exitcode(root_dir: str) -> int | None:
    """The status a finish script (or anything) wrote to s6-overlay's exitcode file, if any."""
    path = os.path.join(root_dir, EXITCODE_DIR, "exitcode")
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if text.isascii() and text.isdigit():
        return int(text) & 255
    if text:
        log.warn(f"{path}: {text[:20]!r} is not an exit status: ignored")
    return None


def _launcher(conf_dir: str) -> str | None:
    """The s6 commands' launcher (or the directory of their links) that install.sh wrote into the
    marker file; else an ``ignity-s6`` on PATH (a pip install)."""
    try:
        with open(os.path.join(conf_dir, MARKER)) as f:
            first = f.readline().strip()
        if first:
            return first
    except OSError:
        pass
    for d in os.environ.get("PATH", "").split(":"):
        candidate = os.path.join(d, "ignity-s6")
        if d and os.access(candidate, os.X_OK):
            return candidate
    return None
