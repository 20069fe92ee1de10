"""The Prometheus text exposition (format 0.0.4, which OpenMetrics scrapers read too) of the
status of every service and of ignity itself: what ``ignity metrics`` prints and the HTTP
listener serves on ``/metrics``.

Input is the status JSON (one definition, ``status --json``): one dict per service with its
``resources``, and the ``resources`` of ignity. Every per-service sample is labelled
``service="NAME"``; ignity's own resources are samples of the same families without the label.
This module must not depend on any other ignity module.
"""

from __future__ import annotations

from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _label(value: str) -> str:
    """A label value as the format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(int(value))


# (name, type, help, value of a service dict or None to skip the sample)
_Getter = Callable[[dict], "float | None"]


def _resource(key: str) -> _Getter:
    return lambda s: (s.get("resources") or {}).get(key)


_STATE_FAMILIES: list[tuple[str, str, str, _Getter]] = [
    ("ignity_service_up", "gauge", "1 when the service's run process is alive",
     lambda s: int(s.get("pid") is not None)),
    ("ignity_service_ready", "gauge", "1 when the service is up and ready",
     lambda s: int(bool(s.get("ready")))),
    ("ignity_service_healthy", "gauge", "1 when the service's health is ok (what ignity health checks)",
     lambda s: int(s.get("health") == "ok")),
    ("ignity_service_restarts_total", "counter", "restarts of the service since ignity started",
     lambda s: s.get("restarts", 0)),
]
_RESOURCE_FAMILIES: list[tuple[str, str, str, _Getter]] = [
    ("ignity_service_rss_bytes", "gauge", "resident memory of the service's process tree (ignity's own without label)",
     _resource("rss_bytes")),
    ("ignity_service_open_fds", "gauge", "open file descriptors of the service's process tree", _resource("open_fds")),
    ("ignity_service_threads", "gauge", "threads of the service's process tree", _resource("threads")),
    ("ignity_service_processes", "gauge", "processes in the service's tree", _resource("processes")),
]
_CPU = "ignity_service_cpu_seconds_total"


def _head(name: str, kind: str, help_text: str, openmetrics: bool) -> list[str]:
    """HELP and TYPE lines; OpenMetrics names a counter's family without its ``_total``."""
    if openmetrics and kind == "counter":
        name = name[:-len("_total")]
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def exposition(services: list[dict], ignity: dict | None, openmetrics: bool = False) -> str:
    """The whole text, ``services`` being status dicts and ``ignity`` ignity's ``resources``;
    Prometheus' text format 0.0.4, or OpenMetrics 1.0 (what Prometheus asks for first)."""
    lines: list[str] = []
    labels = [f'service="{_label(s["name"])}"' for s in services]
    for families, of_ignity in ((_STATE_FAMILIES, False), (_RESOURCE_FAMILIES, True)):
        for name, kind, help_text, get in families:
            lines += _head(name, kind, help_text, openmetrics)
            if of_ignity and ignity is not None:
                lines.append(f"{name} {_number(get({'resources': ignity}))}")
            for label, svc in zip(labels, services):
                value = get(svc)
                if value is not None:
                    lines.append(f"{name}{{{label}}} {_number(value)}")
    lines += _head(_CPU, "counter", "CPU time of the service's process tree, by mode (ignity's own without service)",
                   openmetrics)
    sources = ([("", ignity)] if ignity is not None else []) + \
        [(label + ",", s.get("resources")) for label, s in zip(labels, services)]
    for label, res in sources:
        if res:
            for mode in ("user", "system"):
                lines.append(f'{_CPU}{{{label}mode="{mode}"}} {_number(float(res[f"cpu_{mode}_seconds"]))}')
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"
