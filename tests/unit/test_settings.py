"""settings: every IGNITY_* parsed once; junk names the variable (SPEC §9, §11.6)."""
import pytest

from ignity import settings
from ignity.errors import ConfigError


def test_defaults():
    s = settings.load({})
    assert s.conf_dir == "/etc/ignity" and s.run_dir == "/run/ignity"
    assert (s.services_gracetime_ms, s.kill_gracetime_ms, s.kill_finalize_maxtime_ms) == (5000, 3000, 5000)
    assert (s.cmd_wait_for_services, s.cmd_wait_for_services_maxtime_ms) == (False, 5000)
    assert not s.skip_perms and not s.sync_disks and s.verbosity == 1 and not s.envs_shared
    assert s.control_socket == "/run/ignity/control" and s.conf("init") == "/etc/ignity/init"
    assert not s.log_prefix and s.log_timestamps == "none"


def test_log_settings():
    s = settings.load({"IGNITY_LOG_PREFIX": "1", "IGNITY_LOG_TIMESTAMPS": "tai64n"})
    assert s.log_prefix and s.log_timestamps == "tai64n"


def test_empty_value_means_default():
    assert settings.load({"IGNITY_KILL_GRACETIME": ""}).kill_gracetime_ms == 3000


@pytest.mark.parametrize("name,value", [
    ("IGNITY_KILL_GRACETIME", "abc"), ("IGNITY_SERVICES_GRACETIME", "-1"), ("IGNITY_KILL_FINALIZE_MAXTIME", "1.5"),
    ("IGNITY_KILL_GRACETIME", " 10"),
    ("IGNITY_CMD_WAIT_FOR_SERVICES", "yes"), ("IGNITY_SYNC_DISKS", "2"), ("IGNITY_VERBOSITY", "9"),
    ("IGNITY_ENVS_MODE", "public"), ("IGNITY_RUN_DIR", "relative/dir"), ("USERMAP_UID", "bob"),
    ("USERMAP_GID", "²"), ("IGNITY_KILL_GRACETIME", "³"),
    ("IGNITY_LOG_PREFIX", "yes"), ("IGNITY_LOG_TIMESTAMPS", "local"), ("IGNITY_LOG_TIMESTAMPS", "ISO"),
])
def test_junk_names_the_variable(name, value):
    with pytest.raises(ConfigError) as e:
        settings.load({name: value})
    assert name in str(e.value)


def test_paths_only_ignores_other_settings():
    s = settings.paths_only({"IGNITY_RUN_DIR": "/tmp/x", "IGNITY_KILL_GRACETIME": "junk"})
    assert s.envdir == "/tmp/x/envs"


def test_settings_are_immutable():
    s = settings.load({})
    with pytest.raises(AttributeError):
        s.kill_gracetime_ms = 1


@pytest.mark.parametrize("value, addr", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("localhost:80", ("127.0.0.1", 80)),
    ("[::1]:9000", ("::1", 9000)),
    ("127.1.2.3:65535", ("127.1.2.3", 65535)),
])
def test_http_addr_loopback(value, addr):
    assert settings.load({"IGNITY_HTTP_ADDR": value}).http_addr == addr


def test_http_addr_off_by_default():
    assert settings.load({}).http_addr is None


@pytest.mark.parametrize("value", ["0.0.0.0:9000", "[::]:9000", "10.1.2.3:9000"])
def test_http_addr_beyond_loopback_must_be_asked_for(value):
    with pytest.raises(ConfigError, match="IGNITY_HTTP_ADDR_ALLOW_ANY=1"):
        settings.load({"IGNITY_HTTP_ADDR": value})
    assert settings.load({"IGNITY_HTTP_ADDR": value, "IGNITY_HTTP_ADDR_ALLOW_ANY": "1"}).http_addr[1] == 9000


@pytest.mark.parametrize("value", ["9000", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:x",
                                   "example.com:80", ":9000"])
def test_http_addr_junk(value):
    with pytest.raises(ConfigError, match="IGNITY_HTTP_ADDR"):
        settings.load({"IGNITY_HTTP_ADDR": value})
