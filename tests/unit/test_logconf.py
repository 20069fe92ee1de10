"""logconf: the knob files of a built-in log/ directory; bad values give one line and the default."""
from ignity import logconf


def make(tmp_path, **files):
    d = tmp_path / "log"
    d.mkdir()
    for name, text in files.items():
        (d / name.replace("_", "-")).write_text(text)
    return str(d)


def test_defaults_without_directory_go_to_stdout(tmp_path):
    c = logconf.from_dir(make(tmp_path), "web")
    assert c.directory is None and c.stdout and not c.stderr
    assert c.prefix == b"[web] " and c.stdout_timestamp == "none" and c.file_timestamp == "iso"
    assert c.max_size == 1_000_000 and c.keep == 10


def test_defaults_with_directory_go_to_files_only(tmp_path):
    c = logconf.from_dir(make(tmp_path, directory="/var/log/web\n"), "web")
    assert c.directory == "/var/log/web" and not c.stdout


def test_relative_directory_is_inside_log(tmp_path):
    d = make(tmp_path, directory="main")
    assert logconf.from_dir(d, "web").directory == d + "/main"


def test_knobs(tmp_path):
    c = logconf.from_dir(make(tmp_path, directory="/l", max_size="5000", keep="0", timestamp="tai64n\n",
                              prefix="web| \n", stdout="1", stderr="1"), "web")
    assert (c.max_size, c.keep, c.file_timestamp, c.stdout_timestamp) == (5000, 0, "tai64n", "tai64n")
    assert c.prefix == b"web| " and c.stdout and c.stderr


def test_json_format(tmp_path, capfd):
    c = logconf.from_dir(make(tmp_path, format="json\n"), "web")
    assert c.format == "json" and c.name == "web"
    (tmp_path / "log" / "format").write_text("yaml\n")
    assert logconf.from_dir(str(tmp_path / "log"), "web").format == "text"
    assert "format: 'yaml' is not text or json, using text" in capfd.readouterr().err


def test_empty_prefix_means_none(tmp_path):
    assert logconf.from_dir(make(tmp_path, prefix=""), "web").prefix == b""


def test_bad_values_are_named_with_the_default(tmp_path, capfd):
    d = make(tmp_path, max_size="100", keep="many", timestamp="local", stdout="yes", prefix="a\nb\n")
    c = logconf.from_dir(d, "web")
    assert (c.max_size, c.keep, c.file_timestamp, c.stdout, c.prefix) == (1_000_000, 10, "iso", True, b"[web] ")
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 5
    assert f"ignity: warning: {d}/max-size: '100' is not a number >= 4096, using 1000000" in err
    assert any(f"{d}/keep" in line and "using 10" in line for line in err)
    assert any(f"{d}/timestamp" in line and "using iso in files and none on stdout" in line for line in err)


def test_is_builtin(tmp_path):
    d = make(tmp_path)
    assert logconf.is_builtin(d)
    (tmp_path / "log" / "run").write_text("#!/bin/sh\n")
    assert not logconf.is_builtin(d)
    assert not logconf.is_builtin(str(tmp_path / "nope"))
