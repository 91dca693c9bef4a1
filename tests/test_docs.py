"""The docs stay true to the code: every test docs/reliability.md cites exists, every config option and
experiment is listed in docs/configs.md, and every local link of the README and docs/ resolves."""

from __future__ import annotations

import re

import pytest
from train_helpers import REPO

from cifar_resnets.config.resources import conf_dir

DOCS = sorted((REPO / "docs").glob("*.md"))
TEST_SOURCES = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))


def test_every_test_the_reliability_page_cites_exists() -> None:
    cited = set(re.findall(r"\btest_\w+", (REPO / "docs" / "reliability.md").read_text()))
    cited = {name for name in cited if not (REPO / "tests" / f"{name}.py").is_file()}  # file names
    missing = sorted(name for name in cited if not re.search(rf"def {name}\b", TEST_SOURCES))
    assert not missing, missing


def test_every_config_option_and_experiment_is_listed() -> None:
    text = (REPO / "docs" / "configs.md").read_text()
    groups = ("data", "model", "optim", "schedule", "augment", "trainer", "callbacks", "logger")
    missing = [
        f"{g}={p.stem}" for g in groups for p in sorted((conf_dir() / g).glob("*.yaml")) if p.stem not in text
    ]
    experiments = [
        p.relative_to(conf_dir() / "experiment").with_suffix("")
        for p in (conf_dir() / "experiment").rglob("*.yaml")
    ]
    missing += [f"experiment={e}" for e in experiments if e.name not in text]
    assert not missing, missing


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_local_links_resolve(page) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
