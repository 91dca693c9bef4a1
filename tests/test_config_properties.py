"""Property tests of the config checks: a bad value for any key is refused in one line, before any work.

The keys come from the composed configs (every option of every config group), not from a list kept
here, so a key added to a YAML file is covered as soon as it exists: it must have a rule in
``cifar_resnets.config.checks.RULES`` (which says its valid range), and hypothesis draws values outside
that range. Every value must end in exit status 2 and one ``cifar-train: error:`` line that names
the key: many draws per key through the Hydra callback that runs the checks, and one per numeric key
through the real entry point in this process (``cli.train.main`` with ``sys.argv`` patched, as the
console script calls it), which also leaves no run folder. ``data.root`` points at a folder that does
not exist, so a check that came after the data is read would fail differently. A few cases run
``cifar-train`` as a subprocess, the way users meet it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import string
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf
from train_helpers import run_cli

from cifar_resnets.config.checks import RULES, CheckConfigCallback, check_config
from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir
from cifar_resnets.config.rules import Choice, Either, Flag, ListOf, Number, Rule, Text, among
from cifar_resnets.data.augment_spec import AugmentSpec
from cifar_resnets.errors import ConfigError

GROUPS = ("data", "model", "optim", "schedule", "augment", "trainer", "callbacks", "logger")
# Groups of whole-config presets (`# @package _global_`, like experiments) that bring keys of their own
# (search.*): each option is composed on its own, over the defaults.
PRESET_GROUPS = ("hparams_search",)
# Every run: a data folder that does not exist, and the CPU (a GPU check needs no GPU to refuse).
BASE = ["data.root=/nonexistent/cifar", "trainer.accelerator=cpu"]


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every value below ``node``; lists count as one value, ``_target_`` is none."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("_target_", "_partial_", "defaults"):
                yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


@functools.cache
def composed_configs() -> tuple[tuple[tuple[str, ...], DictConfig], ...]:
    """Configs that together hold every option of every group: one per option, over the defaults
    (composed with ``BASE`` and a run folder, as ``cifar-train`` would compose them), then one per
    option of each preset group. One option at a time: a recipe's own option (He et al.'s steps) need
    not fit another recipe's (a 5,000-image sample)."""
    options = {g: sorted(p.stem for p in (conf_dir() / g).glob("*.yaml")) for g in GROUPS}
    choices = [(f"{g}={o}",) for g, opts in options.items() for o in opts]
    choices += [(f"{g}={p.stem}",) for g in PRESET_GROUPS for p in sorted((conf_dir() / g).glob("*.yaml"))]
    return tuple(
        (choice, compose_train([*choice, *BASE, "hydra.run.dir=/nonexistent/run"])) for choice in choices
    )


@functools.cache
def key_sources() -> dict[str, tuple[tuple[str, ...], Any]]:
    """Every key of the composed configs -> (the group choice of the first config with it, its value)."""
    sources: dict[str, tuple[tuple[str, ...], Any]] = {}
    for choice, cfg in composed_configs():
        plain = OmegaConf.to_container(cfg, resolve=False)
        plain.pop("hydra")
        for key, value in leaves(plain):
            sources.setdefault(key, (choice, value))
    return sources


def is_numeric(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(is_numeric(v) for v in value)
    return isinstance(value, (int, float))  # bools too: a flag is a value the run depends on


def test_every_value_of_the_configs_has_a_rule() -> None:
    """Numbers and flags of every group option and every experiment; a rule for a key nowhere is stale."""
    keys = dict(key_sources())
    for path in sorted((conf_dir() / "experiment").rglob("*.yaml")):
        keys.update({k: ([], v) for k, v in leaves(OmegaConf.to_container(OmegaConf.load(path)))})
    missing = sorted(k for k, (_, v) in keys.items() if is_numeric(v) and k not in RULES)
    assert not missing, f"add a rule for these keys to cifar_resnets/config/checks.py RULES: {missing}"
    stale = sorted(set(RULES) - set(keys))
    assert not stale, f"RULES names keys that no config has: {stale}"


def test_every_shipped_config_passes_the_checks() -> None:
    for _, cfg in composed_configs():
        check_config(cfg)
    for path in sorted((conf_dir() / "experiment").rglob("*.yaml")):
        name = path.relative_to(conf_dir() / "experiment").with_suffix("").as_posix()
        check_config(compose_train([f"experiment={name}", *BASE]))


# ----------------------------------------------------------------------------- bad values
LETTERS = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
ANY_FLOAT = st.floats(min_value=-1e9, max_value=1e9)
ANY_INT = st.integers(min_value=-(10**9), max_value=10**9)


def _outside(rule: Number) -> st.SearchStrategy:
    """Numbers of the rule's kind beyond its bounds (the bound itself where it is open)."""
    parts = []
    if rule.low is not None:
        low = rule.low
        parts.append(
            st.one_of(st.floats(low - 1e6, low), st.integers(int(low) - 10**6, int(low))).filter(
                lambda v: v < low or (rule.low_open and v == low)
            )
        )
    if rule.high is not None:
        high = rule.high
        parts.append(
            st.one_of(st.floats(high, high + 1e6), st.integers(int(high), int(high) + 10**6)).filter(
                lambda v: v > high or (rule.high_open and v == high)
            )
        )
    return st.one_of(parts) if parts else st.nothing()


def bad_values(rule: Rule) -> st.SearchStrategy:
    """Values the rule must refuse, drawn from its own description (bounds, kind, choices)."""
    if isinstance(rule, Number):
        kinds = [NON_FINITE, st.booleans(), LETTERS]
        if rule.kind is int:
            kinds.append(ANY_FLOAT)  # 2.0 is no batch size either
        strategy = st.one_of(_outside(rule), *kinds)
    elif isinstance(rule, Flag):
        strategy = st.one_of(ANY_INT, ANY_FLOAT, LETTERS)
    elif isinstance(rule, Choice):
        strategy = st.one_of(LETTERS, ANY_INT).filter(lambda v: not among(v, rule.values))
    elif isinstance(rule, Text):
        strategy = st.one_of(ANY_INT, ANY_FLOAT, st.booleans(), st.just(""))
    elif isinstance(rule, ListOf):
        wrong_items = st.lists(bad_values(rule.item), min_size=1, max_size=3)
        strategy = st.one_of(wrong_items, ANY_INT, LETTERS)
    elif isinstance(rule, Either):
        # Bad for one option and, as the rule itself says, for the others too.
        options = st.one_of([bad_values(o) for o in rule.options])
        strategy = options.filter(lambda v: rule.problem(v) is not None)
    else:
        raise AssertionError(f"no strategy for {type(rule).__name__}: add one here")
    return strategy.filter(lambda v: not among(v, list(rule.also)))


def override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar, typed as the command line types it."""

    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f"'{v}'"
        if isinstance(v, list):
            return "[" + ",".join(text(x) for x in v) + "]"
        return repr(v)  # ints, floats, inf, nan

    return f"{key}={text(v=value)}"


@contextlib.contextmanager
def _hydra_env_as_users_have_it() -> Iterator[None]:
    saved = os.environ.pop("HYDRA_FULL_ERROR", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["HYDRA_FULL_ERROR"] = saved


def run_main(args: list[str]) -> tuple[int, str]:
    """``cifar-train args`` in this process: (exit status, stderr)."""
    from cifar_resnets.cli.train import main

    GlobalHydra.instance().clear()
    saved_argv, err = sys.argv, io.StringIO()
    sys.argv = ["cifar-train", *args]
    try:
        with _hydra_env_as_users_have_it(), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code
    finally:
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
    return code, err.getvalue()


def _numeric(rule: Rule) -> bool:
    return isinstance(rule, (Number, ListOf, Either))


CHECKED_KEYS = sorted(k for k in key_sources() if k in RULES)
NUMERIC_KEYS = [k for k in CHECKED_KEYS if _numeric(RULES[k])]


OVERRIDES = OverridesParser.create()


def _check_as_the_callback_does(key: str, value: Any) -> tuple[int, str]:
    """The override applied as Hydra applies it (parsed, then ``OmegaConf.update``) to the config
    composed once for the key, then the Hydra callback of ``cifar-train``: (exit status, stderr).

    The value is put back afterwards (a copy per draw would cost more than the check itself).
    """
    cfg = dict(composed_configs())[key_sources()[key][0]]
    parent, _, leaf = key.rpartition(".")
    original = OmegaConf.to_container(OmegaConf.select(cfg, parent) if parent else cfg, resolve=False)[leaf]
    parsed = OVERRIDES.parse_override(override(key, value))
    err = io.StringIO()
    try:
        OmegaConf.update(cfg, parsed.key_or_group, parsed.value(), merge=True)
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
            CheckConfigCallback().on_run_start(cfg)
    finally:
        OmegaConf.update(cfg, key, original, merge=False)
    return exit_info.value.code, err.getvalue()


@pytest.mark.parametrize("key", CHECKED_KEYS)
def test_the_checks_refuse_every_bad_value(key: str) -> None:
    """Many draws per key, each through the Hydra callback on a config composed once (milliseconds)."""
    rule = RULES[key]

    @settings(max_examples=6 if _numeric(rule) else 3, derandomize=True, deadline=None, database=None)
    @given(value=bad_values(rule))
    def refused(value: Any) -> None:
        code, err = _check_as_the_callback_does(key, value)
        assert code == 2 and err.startswith(f"cifar-train: error: {key}=") and err.count("\n") == 1, err

    refused()


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_cifar_train_refuses_a_bad_number_in_one_line_before_any_work(key: str) -> None:
    """One draw per numeric key through the whole entry point; Hydra composes the config twice per run
    (a few tenths of a second), so the many draws are the test above."""
    choice, _ = key_sources()[key]

    @settings(max_examples=1, derandomize=True, deadline=None, database=None)
    @given(value=bad_values(RULES[key]))
    def refused(value: Any) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            code, err = run_main([*choice, *BASE, override(key, value), f"hydra.run.dir={run_dir}"])
            lines = err.strip().splitlines()
            assert code == 2, err
            assert len(lines) == 1 and lines[0].startswith(f"cifar-train: error: {key}="), err
            assert not run_dir.exists()

    refused()


@pytest.mark.parametrize("key", sorted(AugmentSpec.kinds()))
def test_augment_spec_and_the_checks_share_one_range(key: str) -> None:
    """The loaders' ``AugmentSpec`` refuses exactly what the config checks refuse, key by key."""
    rule = RULES[f"augment.{key}"]
    values = st.one_of(bad_values(rule), st.floats(-2, 40), st.booleans())

    @settings(max_examples=60, derandomize=True, deadline=None, database=None)
    @given(value=values)
    def agree(value: Any) -> None:
        # Mixup and cutmix stay off (alpha 0), so their probabilities never add up past 1 here.
        base = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0} if key not in ("mixup_alpha", "cutmix_alpha") else {}
        try:
            AugmentSpec.from_config({**base, key: value})
            spec_refuses = False
        except ConfigError as err:
            spec_refuses = True
            assert f"augment.{key}=" in str(err)
        assert spec_refuses == (rule.problem(value) is not None)

    agree()


# ----------------------------------------------------------------------------- as users run it
SUBPROCESS_CASES = [
    ("trainer.max_steps=-5", "trainer.max_steps=-5"),
    ("augment.mixup_prob=1.5", "augment.mixup_prob=1.5"),
    ("optim.lr=inf", "optim.lr=inf"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("model=doesnotexist", "model=doesnotexist"),
    ("optim.lrr=0.1", "optim.lrr"),
    ("a=b=c=[", "'a=b=c=['"),
]


@pytest.mark.parametrize("arg,needle", SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_cifar_train_refuses_in_one_line(tmp_path: Path, arg: str, needle: str) -> None:
    run_dir = tmp_path / "run"
    args = [arg, *BASE, f"hydra.run.dir={run_dir}"]
    proc = run_cli("cifar_resnets.cli.train", args, cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith("cifar-train: error: ") and needle in proc.stderr, proc.stderr
    assert not run_dir.exists() and not (tmp_path / "outputs").exists()
    if arg == "model=doesnotexist":
        assert all(name in proc.stderr for name in ("resnet20", "resnet56", "plain20", "attention_resnet"))
