"""``search.params``, written in Hydra's sweep syntax, read into Optuna distributions.

Parsed by Hydra's own ``OverridesParser``, so a space reads the same in a sweep and in a search
(``interval``, ``range``, ``choice``, with ``tag(log, ...)`` and ``tag(int, ...)`` as hydra-optuna-sweeper
takes them); docs/search.md lists the forms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from hydra.errors import HydraException

from cifar_resnets.errors import ConfigError
from cifar_resnets.search.dependency import import_optuna

# Where Hydra documents the sweep syntax (interval, choice, range, tag).
EXTENDED_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/extended/"
SYNTAX = (
    "interval(a, b), tag(log, interval(a, b)), tag(int, interval(a, b)), choice(x, y, ...) or range(a, b)"
)
TAGS = {"log", "int"}


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{optim: {lr: ...}}`` and ``{optim.lr: ...}`` alike as ``{"optim.lr": ...}``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = value
    return out


def parse_space(params: Mapping[str, Any]) -> dict[str, Any]:
    """Key -> Optuna distribution, for every entry of ``search.params``; one ``ConfigError`` naming the
    key for anything that is not a search space."""
    flat = flat_params(params)
    if not flat:
        raise ConfigError(f"search.params is empty: give each searched key a range, e.g. {SYNTAX}")
    parser = OverridesParser.create()
    return {key: _distribution(parser, key, expression) for key, expression in flat.items()}


def _distribution(parser: OverridesParser, key: str, expression: Any) -> Any:
    where = f"search.params.{key}={expression}"
    if not isinstance(expression, str):
        raise ConfigError(f"{where} is a fixed value, not a search space: write {SYNTAX}")
    try:
        override = parser.parse_override(f"{key}={expression}")
    except HydraException as err:
        reason = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot parse {where}: {reason} (see {EXTENDED_GRAMMAR})") from None
    sweep = override._value  # the parsed sweep object; Override has no public accessor for it
    if not override.is_sweep_override():
        raise ConfigError(f"{where} is a fixed value, not a search space: write {SYNTAX}")
    unknown = set(sweep.tags) - TAGS
    if unknown:
        raise ConfigError(f"{where}: unknown tag {', '.join(sorted(unknown))}; the tags are log and int")
    optuna = import_optuna()
    log = "log" in sweep.tags
    try:
        if isinstance(sweep, IntervalSweep):
            if "int" in sweep.tags:
                return optuna.distributions.IntDistribution(int(sweep.start), int(sweep.end), log=log)
            return optuna.distributions.FloatDistribution(float(sweep.start), float(sweep.end), log=log)
        if isinstance(sweep, RangeSweep):
            return _range_distribution(optuna, override, sweep, log)
        if isinstance(sweep, ChoiceSweep):
            return _choice_distribution(optuna, sweep, log)
    except ValueError as err:  # Optuna's own refusals: low > high, log of a bound <= 0, log with a step
        raise ConfigError(f"{where}: {err}") from None
    raise ConfigError(f"{where} is not a search space Optuna can sample: write {SYNTAX}")


def _range_distribution(optuna: Any, override: Any, sweep: RangeSweep, log: bool) -> Any:
    values = list(override.sweep_iterator())  # Hydra's own reading of the range, float steps included
    if not values:
        raise ValueError(f"range({sweep.start}, {sweep.stop}, {sweep.step}) holds no value")
    low, high, step = min(values), max(values), abs(sweep.step)
    if all(isinstance(v, int) for v in values):
        if log and step != 1:
            raise ValueError("a log-scaled range takes step 1")
        return optuna.distributions.IntDistribution(low, high, step=step if not log else 1, log=log)
    if log:
        raise ValueError("a log-scaled range takes integer bounds and step 1; use tag(log, interval(a, b))")
    return optuna.distributions.FloatDistribution(float(low), float(high), step=float(step))


def _choice_distribution(optuna: Any, sweep: ChoiceSweep, log: bool) -> Any:
    if log or "int" in sweep.tags:
        raise ValueError("choice takes no log or int tag")
    choices = list(sweep.list)
    plain = all(c is None or isinstance(c, (bool, int, float, str)) for c in choices)
    if not plain:
        raise ValueError("each choice must be a number, a string, true/false or null")
    return optuna.distributions.CategoricalDistribution(choices)


def suggest(trial: Any, key: str, distribution: Any) -> Any:
    """The trial's value for ``key``, through Optuna's public ``suggest_*`` methods."""
    optuna = import_optuna()
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        d = distribution
        return trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        d = distribution
        return trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_categorical(key, distribution.choices)
