"""The README's commands are real: every cifar-train line composes, every make target exists."""

from __future__ import annotations

import re
import shlex

import pytest
from train_helpers import REPO

from cifar_resnets.config.compose import compose_train

README = (REPO / "README.md").read_text()
CODE = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))


def _commands(prefix: str) -> list[list[str]]:
    commands = []
    for line in CODE.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(prefix):
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("args", _commands("cifar-train"), ids=lambda a: " ".join(a) or "defaults")
def test_readme_train_commands_compose(args: list[str]) -> None:
    overrides = [a for a in args if a != "-m" and not a.startswith("hydra.")]
    sweep = "-m" in args
    if sweep:  # compose the first value of every swept key
        overrides = [re.sub(r"=([^,]*),.*", r"=\1", o) for o in overrides]
    compose_train(overrides)


def test_readme_make_targets_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = {m for m in re.findall(r"^([a-z-]+):", makefile, flags=re.M)}
    for args in _commands("make"):
        assert args[0] in targets, args


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in CODE
    assert "make test" in (REPO / ".ci" / "run").read_text()
