"""record: immutable values compared by value (what frozen dataclasses give, without the import)."""
import pytest

from ignity.record import Record


class Point(Record):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int):
        self._set(x=x, y=y)


class Other(Record):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int):
        self._set(x=x, y=y)


def test_value_semantics():
    assert Point(1, 2) == Point(1, 2) and hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(2, 1)
    assert Point(1, 2) != Other(1, 2), "a record of another kind is never equal"
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"


def test_immutable():
    p = Point(1, 2)
    with pytest.raises(AttributeError):
        p.x = 3
    with pytest.raises(AttributeError):
        p.z = 3
