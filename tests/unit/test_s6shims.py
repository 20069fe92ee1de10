"""s6shims: the s6 commands' options and names, without a running ignity."""
import pytest

from ignity import s6shims


@pytest.mark.parametrize("args,opts,rest", [
    (["-uwU", "-T", "500", "a"], [("u", None), ("w", "U"), ("T", "500")], ["a"]),
    (["-T500", "--", "-x"], [("T", "500")], ["-x"]),
    (["a", "-u"], [], ["a", "-u"]),
])
def test_options(args, opts, rest):
    assert s6shims._options(args, "wT") == (opts, rest)


def test_option_without_value():
    with pytest.raises(s6shims.Usage, match="-T"):
        s6shims._options(["-T"], "T")


def test_service_names(tmp_path):
    state = tmp_path / "services-state"
    (state / "app" / "log").mkdir(parents=True)
    (tmp_path / "service").symlink_to(state)
    assert s6shims.service_name(str(state / "app"), str(state)) == "app"
    assert s6shims.service_name(str(tmp_path / "service" / "app"), str(state)) == "app"
    assert s6shims.service_name(str(state / "app" / "log"), str(state)) == "app/log"
    assert s6shims.service_name("/run/s6/legacy-services/web", str(state)) == "web"
    assert s6shims.service_name("/run/s6-rc/servicedirs/web/log", str(state)) == "web/log"


@pytest.mark.parametrize("argv,code,words", [
    (["s6-svc", "-x", "a"], 100, "-x"), (["s6-svc", "-wr", "a"], 100, "-wr"), (["s6-svc", "-u"], 100, "service"),
    (["s6-svwait", "-r", "a"], 100, "-r"), (["s6-svstat", "-o", "updownsince", "a"], 100, "updownsince"),
    (["s6-svscanctl", "-r", "/run/service"], 100, "-r"), (["s6-envuidgid", "-n", "a", "b"], 100, "-n"),
    (["ignity-s6", "frobnicate"], 100, "COMMAND"), (["execlineb", "-S1", "x"], 100, "execline package"),
    (["logutil-service", "-x", "/var/log/x"], 100, "-x"),
])
def test_refusals_name_the_option(capsys, monkeypatch, tmp_path, argv, code, words):
    monkeypatch.setenv("PATH", str(tmp_path))  # no execlineb to exec into (that would replace pytest)
    assert s6shims.main(argv) == code
    assert words in capsys.readouterr().err


def test_not_running_is_111(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IGNITY_RUN_DIR", str(tmp_path))
    assert s6shims.main(["/command/s6-svc", "-u", "/run/service/app"]) == 111
    assert str(tmp_path / "control") in capsys.readouterr().err


def test_stat_lines():
    up = {"name": "a", "state": "up", "pid": 42, "ready": True, "uptime_s": 12.5, "want": "up",
          "last_exit_code": None, "last_signal": None}
    assert s6shims._stat_line(up, True) == "up (pid 42) 12 seconds, ready"
    down = {**up, "pid": None, "ready": False, "uptime_s": None, "want": "down", "last_exit_code": 3}
    assert s6shims._stat_line(down, True) == "down (exitcode 3), normally up"
    values = s6shims._stat_values(down, False)
    assert (values["up"], values["exitcode"], values["signal"], values["normallyup"]) == ("false", "3", "NA", "false")


@pytest.mark.parametrize("text,code", [
    ("if { sh -c \"exit 3\" } never-run", 3),
    ("if -n { true } never-run", 1),
    ("if -t { false } never-run", 0),
    ("foreground { false } if { sh -c \"exit 4\" } never-run", 4),
    ("if { sh -c \"kill $$\" } never-run", 128 + 15),
    ("foreground { true } if { true }", 0),
    ("# nothing at all\n", 0),
])
def test_run_text_chains(text, code):
    assert s6shims.run_text(text, "up") == code


@pytest.mark.parametrize("text", ["background { true } true", "if { if { true } true } true", "if -x 3 { true } true",
                                  "true { x }"])
def test_run_text_beyond_names_the_package(text):
    with pytest.raises(s6shims.IgnityError, match="execline package") as e:
        s6shims.run_text(text, "/etc/s6-overlay/s6-rc.d/x/up")
    assert "s6-rc.d/x/up" in str(e.value)


def test_with_retries(tmp_path):
    counter = tmp_path / "n"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}; test $n -ge 2"
    assert s6shims.main(["with-retries", "-n", "5", "sh", "-c", script]) == 0
    assert counter.read_text() == "3\n"
    assert s6shims.main(["with-retries", "-n", "2", "-t", "100", "sleep", "5"]) == 1
