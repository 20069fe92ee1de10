"""Jinja2 for ignity's configuration files (``perms/`` and ``templates/``): one environment, one way
of turning a template's mistake into a message naming the file and line.

The only module importing jinja2, and only on first use: jinja2 costs ~60 ms of imports, a large
share of the boot budget, and most images have neither perms nor templates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType

from .errors import ConfigError

TYPE_CHECKING = False  # without importing typing (~7 ms at start-up)
if TYPE_CHECKING:
    import jinja2

_environment: jinja2.Environment | None = None


def _jinja2() -> tuple[ModuleType, jinja2.Environment]:
    """jinja2 and the environment, made on first use."""
    global _environment
    import jinja2  # after the first call, a dictionary look-up

    if _environment is None:
        _environment = jinja2.Environment(
            undefined=jinja2.StrictUndefined,  # an undefined variable is an error, never ""
            keep_trailing_newline=True,
            autoescape=False,  # configuration text, not HTML
        )
    return jinja2, _environment


def render(source: str, env: Mapping[str, str], where: Callable[[str], str]) -> str:
    """``source`` rendered with the variables of ``env``. A syntax error, an undefined variable or
    a failing filter is a ConfigError starting with ``where(LINE)`` (the template's line)."""
    jinja2, environment = _jinja2()
    try:
        template = environment.from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise ConfigError(f"{where(str(e.lineno))}: template error: {e.message}") from None
    try:
        return template.render(dict(env))
    except jinja2.UndefinedError as e:
        hint = " (set it in the container's environment or in envs/)" if "is undefined" in str(e) else ""
        raise ConfigError(f"{where(_template_line(e))}: {e}{hint}") from None
    except Exception as e:  # a filter or an operator on a value: the template's fault, not ignity's
        raise ConfigError(f"{where(_template_line(e))}: template error: {e}") from None


def _template_line(error: BaseException) -> str:
    """The template line an exception was raised on. jinja2 rewrites tracebacks so that frames of
    the template's code carry its file name (``<template>`` for ``from_string``) and source line."""
    line = "?"
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = str(tb.tb_lineno)  # keep the deepest: where it was raised
        tb = tb.tb_next
    return line
