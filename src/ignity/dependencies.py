"""The dependency graph of services (``dependencies.d/NAME`` files, the s6-rc convention): checked
for names that do not exist and for cycles, and turned into the relations the supervisor asks
about (what a service waits on, whom it holds back, what ``svc -u`` must bring up first).

Pure: a mapping name -> names it depends on in, answers out. No OS calls.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from .errors import ConfigError

Graph = Mapping[str, Sequence[str]]


def check(graph: Graph) -> None:
    """ConfigError naming the first dependency on a service that does not exist (in byte order of
    the names), else the first cycle found, as ``a -> b -> a``."""
    for name in sorted(graph):
        problem = missing(graph, name)
        if problem:
            raise ConfigError(problem)
    cycle = find_cycle(graph)
    if cycle:
        raise ConfigError(cycle_message(cycle))


def missing(graph: Graph, name: str) -> str | None:
    """The message for the first dependency of ``name`` that is not in the graph, or None."""
    for dep in graph[name]:
        if dep not in graph:
            return (f"service {name}: dependencies.d/{dep}: there is no service {dep} "
                    "(add it to services/ or remove the file)")
    return None


def cycle_message(cycle: list[str]) -> str:
    return f"dependency cycle: {' -> '.join(cycle)} (remove one of these dependencies.d/ files)"


def find_cycle(graph: Graph) -> list[str] | None:
    """A cycle as its names with the first repeated at the end, or None. Iterative depth-first
    search (a chain of 10 000 services must not hit Python's recursion limit)."""
    done: set[str] = set()
    for root in sorted(graph):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(sorted(graph[root]))]
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if dep in on_path:
                return [*path[path.index(dep):], dep]
            if dep in done or dep not in graph:
                continue
            path.append(dep)
            on_path.add(dep)
            stack.append(iter(sorted(graph[dep])))
    return None


def start_order(graph: Graph) -> list[str]:
    """Every name, each after all it depends on; among those free to go, byte order. Assumes
    ``check`` passed."""
    waiting = {name: len(set(deps)) for name, deps in graph.items()}
    holds = dependants(graph)
    ready = sorted(name for name, count in waiting.items() if count == 0)
    order: list[str] = []
    heapq.heapify(ready)
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for other in holds[name]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, other)
    return order


def dependants(graph: Graph) -> dict[str, list[str]]:
    """name -> the names that depend on it directly, in byte order."""
    out: dict[str, list[str]] = {name: [] for name in graph}
    for name in sorted(graph):
        for dep in dict.fromkeys(graph[name]):
            if dep in out:
                out[dep].append(name)
    return out


def closure(graph: Graph, names: Iterable[str]) -> list[str]:
    """``names`` and everything they depend on, directly or not, each after its dependencies."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name not in graph:
            continue
        wanted.add(name)
        todo.extend(graph[name])
    return start_order({n: [d for d in graph[n] if d in wanted] for n in wanted})
