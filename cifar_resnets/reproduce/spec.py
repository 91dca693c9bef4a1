"""A results table's definition: one YAML file of ``experiments/`` (or a file of one's own), checked.

A table lists its rows (a name and the Hydra overrides of ``cifar-train``), how many seeds each row
runs, the metric read from every run's ``metrics.json``, and the published numbers with their
source and an assumed throughput for the cost estimate. Every job of a row gets a deterministic
folder name (``job_name``), so a rerun finds its earlier work.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cifar_resnets.config.resources import experiments_dir
from cifar_resnets.errors import ConfigError

DISPLAYS = ("accuracy", "error")


@dataclass(frozen=True)
class RowSpec:
    name: str
    overrides: tuple[str, ...]
    published: float | None = None
    published_note: str = ""
    images_per_second: float | None = None  # assumed GPU training throughput, for the cost estimate
    images_per_epoch: int | None = None  # training images per epoch where the config cannot tell


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Claim:
    """A finding of the paper the table checks in each seed, e.g. ``plain56 < plain20``: the rows'
    values as the table shows them (accuracy or error, in percent)."""

    left: str
    comparison: str
    right: str

    def holds(self, left: float, right: float) -> bool:
        return _COMPARISONS[self.comparison](left, right)

    def __str__(self) -> str:
        return f"{self.left} {self.comparison} {self.right}"


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    source: str
    metric: str
    display: str
    seeds: int
    rows: tuple[RowSpec, ...]
    common: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()
    cost_note: str = ""
    claims: tuple[Claim, ...] = ()
    path: Path = field(default=Path("."), compare=False)

    def row(self, name: str) -> RowSpec:
        return next(r for r in self.rows if r.name == name)

    def select(self, names: Sequence[str] | None) -> tuple[RowSpec, ...]:
        """The rows called ``names`` in table order (all rows for None); an unknown name is refused."""
        if not names:
            return self.rows
        unknown = [n for n in names if n not in {r.name for r in self.rows}]
        if unknown:
            valid = ", ".join(r.name for r in self.rows)
            raise ConfigError(f"{self.name} has no row {', '.join(unknown)}; its rows are {valid}")
        return tuple(r for r in self.rows if r.name in names)

    @property
    def unit(self) -> str:
        return "error %" if self.display == "error" else "accuracy %"


def table_names(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or experiments_dir()).glob("*.yaml"))


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing key {key!r}")
    if not isinstance(data[key], kind):
        raise ConfigError(f"{where}: {key!r} must be {kind}, got {data[key]!r}")
    return data[key]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of override strings like 'model=resnet20'")
    return tuple(value)


def _claims(value: Any, rows: list[str], where: str) -> tuple[Claim, ...]:
    claims = []
    for text in _strings(value, f"{where}: claims"):
        parts = text.split()
        if len(parts) != 3 or parts[1] not in _COMPARISONS or not {parts[0], parts[2]} <= set(rows):
            raise ConfigError(
                f"{where}: claim {text!r} must read 'ROW OP ROW' with OP one of {' '.join(_COMPARISONS)} "
                f"and rows among {', '.join(rows)}"
            )
        claims.append(Claim(*parts))
    return tuple(claims)


def load_table(name: str, directory: Path | None = None) -> TableSpec:
    """Read and validate ``<name>.yaml`` of ``directory`` (the suite's ``experiments/`` by default)."""
    directory = directory or experiments_dir()
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown table {name!r}; choose one of {', '.join(table_names(directory))}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping")
    where = str(path)
    display = data.get("display", "accuracy")
    if display not in DISPLAYS:
        raise ConfigError(f"{where}: display must be one of {DISPLAYS}, got {display!r}")
    seeds = _require(data, "seeds", int, where)
    if seeds < 1:
        raise ConfigError(f"{where}: seeds must be >= 1")
    rows = []
    for i, row in enumerate(_require(data, "rows", list, where)):
        rwhere = f"{where}: rows[{i}]"
        if not isinstance(row, dict):
            raise ConfigError(f"{rwhere} must be a mapping with name and overrides")
        name = _require(row, "name", str, rwhere)
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"{rwhere}: name {name!r} may hold only letters, digits, '_' and '-'")
        published = row.get("published")
        if published is not None and not isinstance(published, (int, float)):
            raise ConfigError(f"{rwhere}: published must be a number (percent) or null")
        rows.append(
            RowSpec(
                name=name,
                overrides=_strings(row.get("overrides"), f"{rwhere}.overrides"),
                published=None if published is None else float(published),
                published_note=str(row.get("published_note", "")),
                images_per_second=row.get("images_per_second"),
                images_per_epoch=row.get("images_per_epoch"),
            )
        )
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: row names must be unique, got {names}")
    if not rows:
        raise ConfigError(f"{where}: a table needs at least one row")
    return TableSpec(
        name=name_of(path),
        title=str(data.get("title", path.stem)),
        source=str(data.get("source", "")),
        metric=str(data.get("metric", "test/acc")),
        display=display,
        seeds=seeds,
        rows=tuple(rows),
        common=_strings(data.get("common"), f"{where}: common"),
        smoke=_strings(data.get("smoke"), f"{where}: smoke"),
        cost_note=str(data.get("cost_note", "")),
        claims=_claims(data.get("claims"), names, where),
        path=path,
    )


def name_of(path: Path) -> str:
    return path.stem


def job_name(row: str, seed: int) -> str:
    """The job's folder under ``runs/``: deterministic, so a rerun finds its earlier work."""
    return f"{row}_seed{seed}"


def load_table_arg(arg: str) -> TableSpec:
    """A table by name (``experiments/<name>.yaml``) or by the path of a table file of one's own."""
    path = Path(arg)
    if path.suffix == ".yaml":
        if not path.is_file():
            raise ConfigError(f"table file {arg} does not exist; pass an existing .yaml or a table name")
        return load_table(path.stem, path.parent)
    return load_table(arg)
