"""The module map of STYLE.md: imports only point to a lower layer (supervisor -> service is the
one same-layer edge), and no third-party package is imported outside its one module."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ignity"
LAYERS = {
    "errors": 0, "log": 0, "protocol": 0, "record": 0, "confdir": 0, "logformat": 0, "execline": 0,
    "metrics": 0, "health": 0,
    "settings": 1, "envdir": 1, "servicedir": 1, "accounts": 1, "render": 1, "logconf": 1, "logdir": 1,
    "s6settings": 1, "s6detect": 1, "s6rc": 1, "dependencies": 1, "resources": 1,
    "spawn": 2, "loop": 2, "setuidgid": 2, "perms": 2, "templates": 2, "logpump": 2, "s6compat": 2, "fdlimit": 2,
    "service": 3, "oneshot": 3, "supervisor": 3, "scripts": 3, "preboot": 3, "envcache": 3,
    "control": 4, "client": 4, "httpd": 4,
    "stages": 5, "s6shims": 5,
    "cli": 6, "__main__": 7, "__init__": 0,
}
SAME_LAYER_ALLOWED = {("supervisor", "service"), ("supervisor", "oneshot"), ("oneshot", "service"),
                      ("protocol", "errors"), ("logpump", "loop"), ("servicedir", "accounts")}
THIRD_PARTY_HOME = {"dotenv": "envdir", "jinja2": "render", "psutil": "resources"}


def imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                if node.module:
                    yield node.module.split(".")[0]
                else:
                    yield from (alias.name for alias in node.names)
            elif node.module:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_every_module_has_a_layer():
    assert {p.stem for p in PACKAGE.glob("*.py")} <= set(LAYERS)


def test_imports_point_down():
    for path in PACKAGE.glob("*.py"):
        me = path.stem
        for target in imports(path):
            top = target.split(".")[0]
            if top in THIRD_PARTY_HOME:
                assert THIRD_PARTY_HOME[top] == me, f"{me} imports {top}"
            if top in LAYERS and top != "ignity":
                ok = LAYERS[top] < LAYERS[me] or (me, top) in SAME_LAYER_ALLOWED
                assert ok, f"{me} (layer {LAYERS[me]}) imports {top} (layer {LAYERS[top]})"


def test_only_loop_calls_waitpid():
    for path in PACKAGE.glob("*.py"):
        if path.stem != "loop":
            assert ".waitpid(" not in path.read_text(), path.name
