"""The health of a service, in one word, from its status (the ``status --json`` object), and the
verdict of ``ignity health``, ``/readyz`` and the ``ignity_service_healthy`` gauge.

| word        | when                                                                         |
|-------------|------------------------------------------------------------------------------|
| `ok`        | up and ready, its liveness check passing; or not wanted up (down on purpose); |
|             | or a oneshot whose `up` exited 0                                              |
| `starting`  | wanted up, `run` alive, not ready yet; or waiting on a dependency; or a       |
|             | oneshot whose `up` runs                                                       |
| `unhealthy` | wanted up and crash-looping, restarting, or its liveness check failing        |
| `failed`    | given up (``restart-limit``), or it cannot be started (no ``run``, not executable) |

The verdict is healthy only when every service asked about is ``ok``.
This module must not depend on any other ignity module.
"""

from __future__ import annotations

OK, STARTING, UNHEALTHY, FAILED = "ok", "starting", "unhealthy", "failed"
WORDS = (OK, STARTING, UNHEALTHY, FAILED)


def _seconds(value: float | None) -> str:
    return f"{value:.0f} s" if value is not None else "?"


def _last_exit(s: dict) -> str:
    if s.get("last_signal") is not None:
        return f"last killed by signal {s['last_signal']}"
    if s.get("last_exit_code") is not None:
        return f"last exit {s['last_exit_code']}"
    return ""


def assess(s: dict) -> tuple[str, str]:
    """(word, reason) for one status object; the reason is empty when the word is ``ok``."""
    check = s.get("check_output") or ""
    check_words = f" (check: {check})" if check else ""
    if s.get("given_up"):  # wanted down by then, but not by anyone's choice
        return FAILED, s.get("error") or "given up"
    if s.get("want") == "down":
        return OK, ""  # down on purpose, even after a failed start
    if s.get("state") == "failed":
        return FAILED, s.get("error") or "failed"
    if s.get("health_failures"):
        return UNHEALTHY, f"liveness check failed {s['health_failures']} times in a row{check_words}"
    if s.get("type") == "oneshot" and s.get("state") == "up":
        return OK, ""  # its `up` exited 0: done, with no process of its own
    if s.get("pid") is not None and s.get("state") == "up":
        if s.get("ready"):
            return OK, ""
        recent, window = s.get("recent_restarts"), s.get("restart_window_s")
        again = f", {recent} restarts in {_seconds(window)}" if recent and window else ""
        return STARTING, f"not ready since {_seconds(s.get('uptime_s'))}{again}{check_words}"
    if s.get("waiting_on"):
        return STARTING, f"waiting on {', '.join(s['waiting_on'])}"
    if s.get("type") == "oneshot" and s.get("pid") is not None:
        return STARTING, "up running"
    window = s.get("restart_window_s")
    recent = s.get("recent_restarts")
    words = [w for w in (f"restarting: {recent} restarts in {_seconds(window)}" if recent and window else
                         f"restarting ({s.get('restarts', 0)} restarts)",
                         _last_exit(s)) if w]
    if s.get("backoff_s"):
        words.append(f"next start in {s['backoff_s']:.1f} s")
    return UNHEALTHY, ", ".join(words) + check_words


def verdict(services: list[dict], phase: str = "running") -> list[str]:
    """One line per service that is not ``ok`` ("web: starting: not ready since 12 s"); an empty
    list means healthy. ``phase`` is ignity's own (``status --json``'s ``ignity.phase``): while it
    boots (init scripts, services not started yet) or shuts down nothing is healthy."""
    if phase != "running":
        return [f"ignity: {phase}"]
    lines = []
    for s in services:
        word, reason = assess(s)
        if word != OK:
            lines.append(f"{s['name']}: {word}: {reason}" if reason else f"{s['name']}: {word}")
    return lines
