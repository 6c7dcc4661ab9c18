"""Name -> builder registries. Configs refer to components by name; errors list the choices."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __getitem__(self, name: str) -> T:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of {self.choices()}")
        return self._items[name]

    def choices(self) -> list[str]:
        return sorted(self._items)

    def problem(self, key: str, name: str) -> str | None:
        """A config problem line if `name` is not registered, else None."""
        if name in self._items:
            return None
        return f"{key}={name!r} is not a known {self.kind}; choose one of: {', '.join(self.choices())}"
