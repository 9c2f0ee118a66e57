"""A base for small immutable values, what ``@dataclass(frozen=True, slots=True)`` gives, built
without ``dataclasses``.

Creating a dataclass compiles its ``__init__``, ``__eq__`` and ``__repr__`` at import: about
0.7 ms a class on the machines the benchmarks run on, and a plugin pays it on every launch. A
:class:`Record` subclass lists its fields in ``__slots__``, declares their types, and writes a
typed ``__init__`` that hands the values to ``Record.__init__`` by name; equality, hashing,
``repr``, pickling and immutability come from here. Classes on a plugin's start-up path use it
(tests/test_startup_imports.py keeps ``dataclasses`` off that path).
"""

from __future__ import annotations

from typing import Any


class Record:
    """An immutable value whose fields are its ``__slots__`` (see the module docstring)."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, **values: object) -> None:
        if values.keys() != set(self._fields()):
            raise TypeError(
                f"{type(self).__name__} fields are {self._fields()}, got {list(values)}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[str, ...]:
        """The field names, in the order ``repr`` shows them (a subclass may override it)."""
        return self.__slots__

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields())
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return (_rebuild, (type(self), dict(zip(self._fields(), self._values(), strict=True))))


def _rebuild(cls: type[Record], values: dict[str, object]) -> Record:
    return cls(**values)
