"""What one config value may be: the rule types of the table in ``checks.py``.

A rule answers two questions: does this value fit (``problem`` is None), and, in words, what fits
(``describe``), so that a refusal reads ``key=value must be <what fits>``. Rules hold their bounds as
data, so the property test of the checks can draw values just outside them. Types are strict, as YAML
and Hydra's override grammar keep them: ``true`` is no integer, ``2.0`` no batch size, ``'0.1'`` no
learning rate, and ``inf``/``nan`` are no number at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def show(value: Any) -> str:
    """``value`` as it is written in a command-line override (``true``, ``null``, ``'text'``, ``[1, 2]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _named(value: Any) -> str:
    # A choice as one types it: `auto`, `simple` (the override grammar takes words unquoted).
    return value if isinstance(value, str) else show(value)


def among(value: Any, values: Sequence[Any]) -> bool:
    """``value in values`` with the types kept apart (Python's ``True == 1`` and ``1 == 1.0`` are not)."""
    return any(type(value) is type(v) and value == v for v in values)


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """A value fits the rule (``fits``) or is one of ``also``: other values it takes, with their meaning."""

    also: Mapping[Any, str] = field(default_factory=dict, kw_only=True)

    def fits(self, value: Any) -> bool:
        raise NotImplementedError

    def what(self) -> str:
        raise NotImplementedError

    def alternatives(self) -> list[str]:
        return [self.what()]

    def describe(self) -> str:
        """What fits, in words: ``an integer >= 1 or -1 (no limit)``, ``true, false or null (off)``."""
        items = self.alternatives() + [f"{_named(v)} ({meaning})" for v, meaning in self.also.items()]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else what would be."""
        return None if among(value, list(self.also)) or self.fits(value) else self.describe()


@dataclass(frozen=True)
class Number(Rule):
    """A finite number (``kind=int``: an integer) within ``low``..``high`` (None = unbounded)."""

    kind: type = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: ``low`` itself is outside
    high_open: bool = False

    def fits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))

    def what(self) -> str:
        noun = "an integer" if self.kind is int else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{noun} in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_number(self.high)}"
        return noun


@dataclass(frozen=True)
class Flag(Rule):
    """``true`` or ``false``."""

    def fits(self, value: Any) -> bool:
        return isinstance(value, bool)

    def what(self) -> str:
        return "true or false"

    def alternatives(self) -> list[str]:
        return ["true", "false"]


@dataclass(frozen=True)
class Choice(Rule):
    """One of a fixed set of values."""

    values: tuple[Any, ...] = ()

    def fits(self, value: Any) -> bool:
        return among(value, self.values)

    def what(self) -> str:
        return "one of " + ", ".join(_named(v) for v in self.values)


@dataclass(frozen=True)
class Text(Rule):
    """A non-empty string (a name, a path)."""

    def fits(self, value: Any) -> bool:
        return isinstance(value, str) and value != ""

    def what(self) -> str:
        return "a non-empty string"


@dataclass(frozen=True)
class ListOf(Rule):
    """A list whose every item fits ``item`` (of ``length`` items when given)."""

    item: Rule = field(default_factory=Text)
    length: int | None = None

    def fits(self, value: Any) -> bool:
        if not isinstance(value, list) or (self.length is not None and len(value) != self.length):
            return False
        return all(self.item.problem(v) is None for v in value)

    def what(self) -> str:
        count = f"{self.length} " if self.length is not None else ""
        return f"a list of {count}items that are each {self.item.describe()}"


@dataclass(frozen=True)
class Either(Rule):
    """A value that fits one of ``options``."""

    options: tuple[Rule, ...] = ()

    def fits(self, value: Any) -> bool:
        return any(option.problem(value) is None for option in self.options)

    def what(self) -> str:
        return self.describe()

    def alternatives(self) -> list[str]:
        return [option.describe() for option in self.options]
