"""dependencies: missing names and cycles named; start order, dependants and closure of a graph."""
import random

import pytest

from ignity import dependencies
from ignity.errors import ConfigError


def test_missing_name_is_named():
    with pytest.raises(ConfigError) as e:
        dependencies.check({"app": ["redis"], "web": ["app"]})
    assert str(e.value).startswith("service app: dependencies.d/redis: there is no service redis")


@pytest.mark.parametrize(("graph", "cycle"), [
    ({"a": ["a"]}, "a -> a"),
    ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
    ({"x": [], "a": ["x", "b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
    ({"z": ["b"], "b": ["c"], "c": ["b"]}, "b -> c -> b"),
])
def test_cycle_is_named(graph, cycle):
    with pytest.raises(ConfigError) as e:
        dependencies.check(graph)
    assert str(e.value).startswith(f"dependency cycle: {cycle} ")


def test_start_order_respects_every_edge_and_is_stable():
    graph = {"web": ["app"], "app": ["redis", "migrate"], "redis": [], "migrate": ["redis"], "cron": []}
    assert dependencies.start_order(graph) == ["cron", "redis", "migrate", "app", "web"]


def test_random_dags():
    rng = random.Random(13)
    for _ in range(50):
        names = [f"s{i:02d}" for i in range(40)]
        rng.shuffle(names)
        graph = {n: rng.sample(names[:i], min(i, rng.randint(0, 3))) for i, n in enumerate(names)}
        dependencies.check(graph)
        assert dependencies.find_cycle(graph) is None
        order = dependencies.start_order(graph)
        assert sorted(order) == sorted(graph)
        position = {n: i for i, n in enumerate(order)}
        assert all(position[d] < position[n] for n, deps in graph.items() for d in deps)


def test_long_chain_has_no_recursion_limit():
    graph = {f"s{i}": [f"s{i - 1}"] if i else [] for i in range(20000)}
    dependencies.check(graph)
    graph["s0"] = ["s19999"]
    with pytest.raises(ConfigError, match="dependency cycle"):
        dependencies.check(graph)


def test_dependants_and_closure():
    graph = {"web": ["app"], "app": ["redis"], "redis": [], "other": ["redis"]}
    assert dependencies.dependants(graph) == {"web": [], "app": ["web"], "redis": ["app", "other"], "other": []}
    assert dependencies.closure(graph, ["web"]) == ["redis", "app", "web"]
    assert dependencies.closure(graph, ["redis"]) == ["redis"]
