"""Plots and table formatting on hand-made inputs (no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from cifar_resnets.reporting.plots import (
    plot_comparison,
    plot_confusion_matrix,
    read_scalars,
    write_training_history,
)
from cifar_resnets.reproduce.report import to_csv, to_markdown
from cifar_resnets.reproduce.results import RowResult
from cifar_resnets.reproduce.spec import Claim, RowSpec, TableSpec
from cifar_resnets.training.hparams import run_hparams


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_training_history_from_event_files(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path))
    for step, (loss, acc) in enumerate([(2.0, 0.3), (1.2, 0.6), (0.8, 0.7)]):
        writer.add_scalar("train/loss_epoch", loss, step)
        writer.add_scalar("val/acc", acc, step)
    writer.close()
    scalars = read_scalars(tmp_path)
    assert list(scalars["val/acc"][0]) == [0, 1, 2]
    assert np.allclose(scalars["train/loss_epoch"][1], [2.0, 1.2, 0.8])
    assert is_png(write_training_history(tmp_path))
    assert write_training_history(tmp_path / "empty") is None  # a run without a logger: nothing to draw


def test_confusion_and_comparison_pngs(tmp_path: Path) -> None:
    matrix = np.array([[5, 1], [0, 4]])
    assert is_png(plot_confusion_matrix(matrix, ["cat", "dog"], tmp_path / "c.png"))
    assert is_png(
        plot_confusion_matrix(np.eye(100, dtype=int), [str(i) for i in range(100)], tmp_path / "c100.png")
    )
    out = plot_comparison(
        ["a", "b"], [91.0, None], [0.3, None], [92.0, 90.0], tmp_path / "bars.png", "accuracy %"
    )
    assert is_png(out)


def test_markdown_and_csv_of_rows() -> None:
    table = TableSpec(
        "t", "a table", "paper", "test/acc", "error", 2, (RowSpec("r1", ("model=resnet20",), 8.75),)
    )
    ok = RowResult(
        table.rows[0], [8.0, 9.0], 2, 182, 64000, 600.0, 13000.0, [], [], ["CPU"], ["torch 2.14.1"]
    )
    failed = RowResult(RowSpec("r2", (), None), [], 2, None, None, None, None, ["DataError: offline"], [])
    markdown = to_markdown(table, [ok, failed])
    row = (
        "| r1 | 8.50 ± 0.71 | 8.00, 9.00 | 8.75 | -0.25 | 2/2 | 182 | 64000 | 10:00 | 13,000 "
        "| CPU: torch 2.14.1 | ok |"
    )
    assert row in markdown
    assert "| r2 | — | — | — | — | 0/2 |" in markdown and "failed: DataError: offline" in markdown
    csv_text = to_csv(table, [ok, failed])
    assert "r1,model=resnet20,test/acc,error %,8.5000,0.7071,2,2,8.7500,-0.2500" in csv_text
    assert ok.difference == pytest.approx(-0.25)


def test_run_hparams_are_flat_scalars() -> None:
    config = {
        "model": {"name": "resnet20"},
        "data": {"name": "cifar10", "batch_size": 128},
        "optim": {"_target_": "torch.optim.SGD", "lr": 0.1, "weight_decay": 1e-4},
        "schedule": {"_target_": "cifar_resnets.training.schedules.multistep"},
        "trainer": {"max_epochs": -1, "max_steps": 64000},
        "seed": 3,
    }
    hp = run_hparams(config)
    assert hp == {
        "model": "resnet20",
        "data": "cifar10",
        "optim": "SGD",
        "lr": 0.1,
        "weight_decay": 1e-4,
        "batch_size": 128,
        "max_epochs": -1,
        "max_steps": 64000,
        "schedule": "multistep",
        "seed": 3,
    }


def test_a_tables_claims_are_checked_seed_by_seed() -> None:
    """A claim holds in a seed when both rows finished that seed and their values compare as stated."""
    deep, shallow = RowSpec("deep", ()), RowSpec("shallow", ())
    table = TableSpec(
        "t", "a table", "", "test/acc", "accuracy", 3, (deep, shallow),
        claims=(Claim("deep", ">=", "shallow"), Claim("deep", "<", "shallow")),
    )  # fmt: skip
    results = [
        RowResult(deep, [60.0, 58.0, 61.0], 3, None, None, None, None, [], [], seeds=[0, 1, 2]),
        RowResult(shallow, [59.0, 58.5], 3, None, None, None, None, [], [], seeds=[0, 2]),
    ]
    markdown = to_markdown(table, results)
    assert "| deep | 59.67 ± 1.53 | 60.00, 58.00, 61.00 |" in markdown
    assert "| deep >= shallow | 59.67 vs 58.75 | 2/2 (0, 2) | holds in every seed |" in markdown
    assert "| deep < shallow | 59.67 vs 58.75 | 0/2 | does not hold in every seed |" in markdown
