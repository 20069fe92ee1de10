"""execline: the single-command form of s6-rc up/down files, with execlineb's word rules; checked
against the real execlineb where the machine has it."""
import json
import shutil
import subprocess
import sys

import pytest

from ignity import execline

CASES = [
    ("nginx -g \"daemon off;\"", ["nginx", "-g", "daemon off;"]),
    ('a b "c d" e"f g"h', ["a", "b", "c d", "ef gh"]),
    ('x\\ y  "" z # comment\n  w', ["x y", "", "z", "w"]),
    ('"\\0x41|\\0101|\\101|\\1234|\\t|\\q" \\"x', ["A|A|e|{4|\t|q", '"x']),
    ("a \\\nb", ["a", "b"]),
    ('c\\\nd "a\\\nb"', ["c\nd", "ab"]),
    ("'single quoted' $HOME ${1}", ["'single", "quoted'", "$HOME", "${1}"]),
    ("{x x} {b a{", ["{x", "x}", "{b", "a{"]),
    ('"a"#b #c', ["a#b"]),
    ("# only a comment\n", []),
    ("/etc/s6-overlay/scripts/prepare\n", ["/etc/s6-overlay/scripts/prepare"]),
    ('"\\255"', ["\udcff"]),
]


@pytest.mark.parametrize("text,argv", CASES)
def test_words(text, argv):
    assert execline.command_line(text) == argv


@pytest.mark.skipif(not shutil.which("execlineb"), reason="no execlineb on this machine")
@pytest.mark.parametrize("text,argv", CASES)
def test_same_as_execlineb(tmp_path, text, argv):
    script = tmp_path / "script"
    script.write_text(f"{sys.executable} -c \"import sys, json; print(json.dumps(sys.argv[1:]))\" {text}")
    out = subprocess.run([shutil.which("execlineb"), "-P", str(script)], capture_output=True, check=True)
    assert json.loads(out.stdout.decode("utf-8", "surrogateescape")) == argv


def test_blocks_are_more_than_one_command():
    text = "if { mkdir -p /var/log/myapp }\nif { chown nobody:nogroup /var/log/myapp }\nchmod 02755 /var/log/myapp\n"
    assert execline.parse(text) == ["if", ["mkdir", "-p", "/var/log/myapp"], "if",
                                    ["chown", "nobody:nogroup", "/var/log/myapp"], "chmod", "02755", "/var/log/myapp"]
    with pytest.raises(execline.NotOneCommand):
        execline.command_line(text)


@pytest.mark.parametrize("text", ['"open', "a }", "{ a", '"\\0"', '"\\0x"', '"\\999"', "a\\"])
def test_syntax_errors(text):
    with pytest.raises(execline.ExeclineError):
        execline.command_line(text)


def test_shebang_options():
    assert execline.strip_shebang("#!/command/execlineb -P\nnginx\n") == (["-P"], "nginx\n")
    assert execline.strip_shebang("nginx\n") == ([], "nginx\n")


def test_chain_of_if_and_foreground():
    text = "if { mkdir -p /var/log/myapp }\nif -n -t { false }\nforeground { echo x }\nchmod 02755 /var/log/myapp\n"
    steps, argv = execline.chain(text)
    assert steps == [("if", frozenset(), ["mkdir", "-p", "/var/log/myapp"]), ("if", frozenset({"-n", "-t"}), ["false"]),
                     ("foreground", frozenset(), ["echo", "x"])]
    assert argv == ["chmod", "02755", "/var/log/myapp"]
    assert execline.chain("nginx -g x") == ([], ["nginx", "-g", "x"])
