"""s6settings: each S6_* honoured as an IGNITY_* setting or an S6Settings field, or refused."""
import pytest

from ignity import s6settings, settings
from ignity.errors import ConfigError


def load(env):
    translated, s6 = s6settings.translate(env)
    return settings.load(translated), s6, translated


def test_defaults_change_nothing_but_path():
    conf, s6, env = load({"PATH": "/usr/sbin:/usr/bin"})
    assert conf == settings.load({})
    assert env["PATH"] == "/command:/usr/sbin:/usr/bin:/bin"
    assert s6settings.translate({"PATH": "/bin:/command:/x"})[0]["PATH"] == "/command:/bin:/x:/usr/bin"
    assert s6 == s6settings.S6Settings()


def test_times_map_onto_ignity():
    conf, _, _ = load({"S6_SERVICES_GRACETIME": "1200", "S6_KILL_GRACETIME": "700", "S6_KILL_FINISH_MAXTIME": "0",
                       "S6_SYNC_DISKS": "1", "S6_VERBOSITY": "3"})
    assert (conf.services_gracetime_ms, conf.kill_gracetime_ms, conf.kill_finalize_maxtime_ms) == (1200, 700, 0)
    assert conf.sync_disks and conf.verbosity == 2


@pytest.mark.parametrize("s6,ignity", [("0", 0), ("1", 1), ("2", 1), ("3", 2), ("4", 3), ("5", 3), ("9", 3)])
def test_verbosity(s6, ignity):
    assert load({"S6_VERBOSITY": s6})[0].verbosity == ignity


def test_wait_for_services_without_maxtime_has_no_limit():
    conf, _, _ = load({"S6_CMD_WAIT_FOR_SERVICES": "1"})
    assert conf.cmd_wait_for_services and conf.cmd_wait_for_services_maxtime_ms == s6settings.NO_LIMIT_MS
    conf, _, _ = load({"S6_CMD_WAIT_FOR_SERVICES": "1", "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "250"})
    assert conf.cmd_wait_for_services_maxtime_ms == 250
    assert not load({"S6_CMD_WAIT_FOR_SERVICES": "0"})[0].cmd_wait_for_services


def test_explicit_ignity_wins():
    conf, _, _ = load({"S6_KILL_GRACETIME": "700", "IGNITY_KILL_GRACETIME": "50", "S6_VERBOSITY": "0",
                       "IGNITY_VERBOSITY": "2"})
    assert conf.kill_gracetime_ms == 50 and conf.verbosity == 2
    # an empty IGNITY_* is "unset" (SPEC §11.6): the S6_* one applies
    assert load({"S6_KILL_GRACETIME": "700", "IGNITY_KILL_GRACETIME": ""})[0].kill_gracetime_ms == 700


def test_fields_for_the_compat_layer():
    _, s6, _ = load({"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2", "S6_CMD_ARG0": "/usr/bin/tini  --",
                     "S6_CMD_RECEIVE_SIGNALS": "1", "S6_FIX_ATTRS_HIDDEN": "1", "S6_STAGE2_HOOK": "/hook arg",
                     "S6_RUNTIME_PROFILE": "dev", "S6_KEEP_ENV": "1", "S6_FOO": "x"})
    assert s6.behaviour == 2 and s6.cmd_arg0 == ("/usr/bin/tini", "--") and s6.receive_signals
    assert s6.fix_attrs_hidden and s6.stage2_hook == "/hook arg" and s6.profile == "dev"
    assert s6.unknown == ("S6_FOO",)


@pytest.mark.parametrize("name,value", [
    ("S6_LOGGING", "1"), ("S6_LOGGING", "2"), ("S6_WAIT_FOR_CLOSING_FD", "3"), ("S6_KILL_GRACETIME", "3s"),
    ("S6_BEHAVIOUR_IF_STAGE2_FAILS", "yes"), ("S6_KEEP_ENV", "true"), ("S6_LOGGING_SCRIPT", "n20 +^error s100"),
    ("S6_RUNTIME_PROFILE", "../x"),
])
def test_refused_with_the_name(name, value):
    with pytest.raises(ConfigError) as e:
        s6settings.translate({name: value})
    assert name in str(e.value)


def test_logging_script():
    assert s6settings.logging_options("n20 s1000000 T") == {"keep": 20, "max_size": 1000000, "timestamp": "iso"}
    assert s6settings.logging_options("t n3") == {"keep": 3, "max_size": 99999, "timestamp": "tai64n"}
