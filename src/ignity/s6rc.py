"""s6-overlay v3's s6-rc source definitions (``/etc/s6-overlay/s6-rc.d``) as ignity service
directories (docs/migrating.md): not a second supervisor, a translation done at boot.

- a ``longrun`` is a service: ``run``, ``finish`` and the s6 knob files as they are;
- a ``oneshot`` is a ``type oneshot`` service whose ``up``/``down`` programs are ignity's
  ``ignity-s6`` launcher, which reads the s6-rc file (one execline command line) beside it
  (``s6-rc-up``, ``s6-rc-down``) and runs it;
- a ``bundle`` is the set of its contents: a dependency on a bundle is a dependency on each;
- ``dependencies.d/`` are dependencies; s6-overlay's own services (``base``, ``fix-attrs``,
  ``legacy-cont-init``...) are done before any service starts under ignity and are dropped, except
  ``legacy-services``, which means every ``/etc/services.d`` service;
- a ``producer-for``/``consumer-for`` pair is a service and its logger (``log/``); the
  ``pipeline-name`` is a bundle of both; a longer pipeline is refused;
- only what the ``user`` and ``user2`` bundles (``$S6_RUNTIME_BUNDLEDIR``, else
  ``/etc/s6-overlay/user-bundles.d``, or the older ``s6-rc.d/user``) hold, with their dependencies,
  starts at boot: another longrun gets a ``down`` file, another oneshot is left out.

Anything that cannot be mapped is a ConfigError naming the file: the boot stops with 100 rather
than run half of the image's services.
"""

from __future__ import annotations

import os

from . import confdir, log
from .errors import ConfigError

# s6-overlay's own s6-rc services: under ignity, fix-attrs.d and cont-init.d are done before any
# service starts, so a dependency on them is always met
BUILTIN = frozenset(("base", "fix-attrs", "legacy-cont-init", "s6rc-oneshot-runner", "s6rc-fdholder", "top"))
LEGACY_SERVICES = "legacy-services"
USER_BUNDLES = ("user", "user2")
# longrun files copied as they are (run and finish are linked by the copy into services-state/)
LONGRUN_FILES = ("run", "finish", "notification-fd", "timeout-kill", "timeout-finish", "down-signal", "data", "env")
ONESHOT_KNOBS = ("timeout-up", "timeout-down")
# s6-rc files this translation reads itself, by type; any other is reported as having no effect
COMMON = ("type", "dependencies.d", "dependencies", "producer-for", "consumer-for", "pipeline-name")
KNOWN = {"longrun": frozenset((*COMMON, *LONGRUN_FILES)),
         "oneshot": frozenset((*COMMON, "up", "down", *ONESHOT_KNOBS))}


class Definition:
    """One s6-rc source definition directory."""

    __slots__ = ("contents", "deps", "name", "path", "type")

    def __init__(self, name: str, path: str, type_: str):
        self.name, self.path, self.type = name, path, type_
        self.deps = _names(path, "dependencies")
        self.contents = _names(path, "contents") if type_ == "bundle" else []

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read(self, name: str) -> str | None:
        try:
            with open(self.file(name), encoding="utf-8", errors="replace") as f:
                return f.read().strip()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise ConfigError(f"unable to read {self.file(name)}: {e.strerror}") from None


def _names(path: str, what: str) -> list[str]:
    """``what.d/NAME`` files, or the older ``what`` file with one name per line."""
    names = confdir.visible_names(os.path.join(path, f"{what}.d"))
    try:
        with open(os.path.join(path, what), encoding="utf-8") as f:
            names += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        pass
    return names


def read_definitions(source: str, bundle_dir: str | None) -> dict[str, Definition]:
    defs: dict[str, Definition] = {}
    for name in confdir.visible_names(source):
        path = os.path.join(source, name)
        if not os.path.isdir(path):
            continue
        type_ = _type(path, name)
        defs[name] = Definition(name, path, type_)
    if bundle_dir is not None:
        for name in USER_BUNDLES:
            path = os.path.join(bundle_dir, name)
            if os.path.isdir(path):
                defs[name] = Definition(name, path, "bundle")
    return defs


def _type(path: str, name: str) -> str:
    try:
        with open(os.path.join(path, "type"), encoding="utf-8") as f:
            type_ = f.read().strip()
    except OSError:
        if name in USER_BUNDLES:
            return "bundle"  # s6-overlay writes their type itself
        raise ConfigError(f"{path}: no readable type file (longrun, oneshot or bundle)") from None
    if type_ not in ("longrun", "oneshot", "bundle"):
        raise ConfigError(f"{os.path.join(path, 'type')}: {type_[:40]!r} is not longrun, oneshot or bundle")
    return type_


class Plan:
    """The translation of one s6-rc.d tree."""

    def __init__(self, defs: dict[str, Definition], legacy: list[str]):
        self.defs = defs
        self.legacy = legacy
        self.logger_of: dict[str, str] = {}  # consumer -> its producer
        self._pipelines()

    def _pipelines(self) -> None:
        for d in self.defs.values():
            target = d.read("producer-for") if d.type == "longrun" else None
            if not target:
                continue
            consumer = self.defs.get(target)
            if consumer is None or consumer.type != "longrun":
                raise ConfigError(f"{d.file('producer-for')}: {target} is not a longrun of {os.path.dirname(d.path)}")
            if (consumer.read("consumer-for") or "").split() != [d.name]:
                raise ConfigError(f"{consumer.file('consumer-for')}: must name {d.name} alone (ignity's loggers "
                                  "read one service)")
            if consumer.read("producer-for"):
                raise ConfigError(f"{consumer.file('producer-for')}: a pipeline of more than two services; under "
                                  "ignity a logger cannot itself be logged")
            self.logger_of[consumer.name] = d.name
        for d in self.defs.values():
            if d.type == "longrun" and d.read("consumer-for") and d.name not in self.logger_of:
                raise ConfigError(f"{d.file('consumer-for')}: no producer names {d.name} in its producer-for")

    def resolve(self, name: str, where: str, seen: frozenset = frozenset()) -> set[str]:
        """The services (longruns and oneshots, producers for their loggers) a name stands for."""
        if name in BUILTIN:
            return set()
        if name == LEGACY_SERVICES:
            return set(self.legacy)
        if name in self.logger_of:
            return {self.logger_of[name]}
        pipeline = [d for d in self.defs.values() if d.read("pipeline-name") == name and d.name in self.logger_of]
        if pipeline and name not in self.defs:
            return {self.logger_of[pipeline[0].name]}
        d = self.defs.get(name)
        if d is None:
            if name in USER_BUNDLES:
                return set()
            raise ConfigError(f"{where}: no service or bundle named {name}")
        if d.type != "bundle":
            return {name}
        if name in seen:
            raise ConfigError(f"{d.path}: bundle {name} contains itself")
        out: set[str] = set()
        for member in d.contents:
            out |= self.resolve(member, os.path.join(d.path, "contents.d"), seen | {name})
        return out

    def dependencies(self, d: Definition) -> list[str]:
        """Its dependencies, and its logger's: under ignity a logger starts with its service."""
        out: set[str] = set()
        consumer = self.consumer(d.name)
        for owner in (d,) if consumer is None else (d, consumer):
            for dep in owner.deps:
                out |= self.resolve(dep, os.path.join(owner.path, "dependencies.d"))
        out.discard(d.name)
        return sorted(out)

    def consumer(self, producer: str) -> Definition | None:
        return next((self.defs[c] for c, p in self.logger_of.items() if p == producer), None)

    def wanted(self) -> set[str]:
        """What starts at boot: the user bundles' services and everything they depend on."""
        todo = set()
        for bundle in USER_BUNDLES:
            todo |= self.resolve(bundle, "the user bundles")
        done: set[str] = set()
        while todo:
            name = todo.pop()
            if name in done or name in self.legacy:
                continue
            done.add(name)
            todo |= set(self.dependencies(self.defs[name]))
        return done

    def services(self) -> list[Definition]:
        return [d for d in self.defs.values() if d.type != "bundle" and d.name not in self.logger_of]


def generate(source: str, bundle_dir: str | None, legacy: list[str], out: str, launcher: str,
             optional_oneshots: bool) -> list[str]:
    """Write the service directories of the s6-rc tree ``source`` under ``out``; their names."""
    plan = Plan(read_definitions(source, bundle_dir), legacy)
    wanted = plan.wanted()
    names = []
    for d in plan.services():
        if d.type == "oneshot" and d.read("up") is None:
            raise ConfigError(f"{d.path}: a oneshot needs an up file")
        if d.type == "oneshot" and d.name not in wanted:
            log.info(f"s6-rc oneshot {d.name}: in no user bundle, not run")
            continue
        target = os.path.join(out, d.name)
        os.makedirs(target)
        _write_deps(target, plan.dependencies(d))
        if d.type == "longrun":
            _longrun(d, target)
            if d.name not in wanted:
                _write(os.path.join(target, "down"), "")
            consumer = plan.consumer(d.name)
            if consumer is not None:
                os.mkdir(os.path.join(target, "log"))
                _longrun(consumer, os.path.join(target, "log"))
        else:
            _oneshot(d, target, launcher, optional_oneshots)
        names.append(d.name)
    return names


def _longrun(d: Definition, target: str) -> None:
    if not os.path.exists(d.file("run")):
        raise ConfigError(f"{d.path}: a longrun needs a run file")
    for name in LONGRUN_FILES:
        if os.path.lexists(d.file(name)):
            os.symlink(os.path.abspath(d.file(name)), os.path.join(target, name))
    _report_unknown(d)


def _oneshot(d: Definition, target: str, launcher: str, optional: bool) -> None:
    _write(os.path.join(target, "type"), "oneshot\n")
    for program in ("up", "down"):
        text = d.read(program)
        if text is None:
            continue
        _write(os.path.join(target, f"s6-rc-{program}"), text + "\n")
        os.symlink(launcher, os.path.join(target, program))
    for knob in ONESHOT_KNOBS:
        value = d.read(knob)
        if value is not None:
            _write(os.path.join(target, knob), value + "\n")
    if optional:
        _write(os.path.join(target, "optional"), "")
    _report_unknown(d)


def _report_unknown(d: Definition) -> None:
    for name in confdir.visible_names(d.path):
        if name not in KNOWN[d.type]:
            log.warn(f"{d.file(name)}: an s6-rc file ignity does not use: no effect")


def _write_deps(target: str, deps: list[str]) -> None:
    if deps:
        os.mkdir(os.path.join(target, "dependencies.d"))
        for dep in deps:
            _write(os.path.join(target, "dependencies.d", dep), "")


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
