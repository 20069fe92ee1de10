"""``Record``: an immutable value with named fields, compared by value.

What a frozen dataclass gives, without importing ``dataclasses`` (~10 ms with ``inspect`` behind
it, a fifth of the budget of ``/init true``). A subclass lists its fields in ``__slots__`` and
sets them once in ``__init__`` through ``_set``. This module must not depend on any other.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~7 ms to import: only type checkers read what it guards
if TYPE_CHECKING:
    from typing import TypeVar

    R = TypeVar("R", bound="Record")


class Record:
    __slots__: tuple = ()

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: {name} cannot be set")

    def replace(self: R, **changes: object) -> R:
        """A copy with some fields changed."""
        copy = object.__new__(type(self))
        copy._set(**{name: getattr(self, name) for name in self.__slots__})
        copy._set(**changes)
        return copy

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.__slots__, self._values()))
        return f"{type(self).__name__}({fields})"
