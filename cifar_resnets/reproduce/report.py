"""A table's report: Markdown and CSV beside the published numbers, a CSV per job, and plots."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from cifar_resnets.errors import UserError
from cifar_resnets.reporting.runs import read_metrics
from cifar_resnets.reproduce.plan import Job
from cifar_resnets.reproduce.results import RowResult, check_claims, device_and_versions, gather
from cifar_resnets.reproduce.spec import TableSpec


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ours(result: RowResult) -> str:
    if result.mean is None:
        return "—"
    if len(result.values) == 1:
        return _num(result.mean)
    return f"{result.mean:.2f} ± {result.std:.2f}"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def to_markdown(table: TableSpec, results: list[RowResult]) -> str:
    """The table as Markdown: ours (mean ± std over seeds) next to the published value."""
    lines = [
        f"# {table.name}: {table.title}",
        "",
        f"Published numbers: {table.source}" if table.source else "",
        f"Metric: `{table.metric}` as {table.unit} of the final weights; ours = mean ± std over the "
        "finished seeds; difference = ours − published.",
        "",
        f"| row | ours ({table.unit}) | per seed | published | difference | seeds | epochs | steps "
        "| wall time | images/s | device, versions | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        published = _num(r.row.published)
        if r.row.published_note:
            published += f" ({r.row.published_note})"
        cells = [
            r.row.name,
            _ours(r),
            ", ".join(f"{v:.2f}" for v in r.values) or "—",
            published,
            _num(r.difference, signed=True),
            f"{len(r.values)}/{r.seeds_total}",
            _num(r.epochs, 0),
            _num(r.steps, 0),
            format_seconds(r.wall_seconds),
            "—" if r.images_per_second is None else f"{r.images_per_second:,.0f}",
            "; ".join(f"{d}: {v}" for d, v in zip(r.devices, r.versions)) if r.devices else "—",
            r.status,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    claims = check_claims(table, results)
    if claims:
        lines += ["", f"The paper's ordering, seed by seed ({table.unit}):", "",
                  "| claim | means | holds in seeds | verdict |", "|---|---|---|---|"]  # fmt: skip
        for c in claims:
            means = f"{c.means[0]:.2f} vs {c.means[1]:.2f}" if c.means else "—"
            held = f"{len(c.holds_in)}/{len(c.seeds)}" + (
                f" ({', '.join(map(str, c.holds_in))})" if c.holds_in else ""
            )
            lines.append(f"| {c.claim} | {means} | {held} | {c.verdict} |")
    return "\n".join(line for line in lines if line is not None) + "\n"


CSV_FIELDS = (
    "row",
    "overrides",
    "metric",
    "unit",
    "mean",
    "std",
    "seeds_done",
    "seeds_total",
    "published",
    "difference",
    "epochs",
    "steps",
    "wall_seconds",
    "images_per_second",
    "status",
    "values",
    "devices",
    "versions",
)


def to_csv(table: TableSpec, results: list[RowResult]) -> str:
    """One line per row; empty cells where a value does not exist (failed rows, unpublished ones)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()

    def blank(v: float | None, digits: int = 4) -> str:
        return "" if v is None else f"{v:.{digits}f}"

    for r in results:
        writer.writerow(
            {
                "row": r.row.name,
                "overrides": " ".join(r.row.overrides),
                "metric": table.metric,
                "unit": table.unit,
                "mean": blank(r.mean),
                "std": blank(r.std),
                "seeds_done": len(r.values),
                "seeds_total": r.seeds_total,
                "published": blank(r.row.published),
                "difference": blank(r.difference),
                "epochs": blank(r.epochs, 1),
                "steps": blank(r.steps, 0),
                "wall_seconds": blank(r.wall_seconds, 1),
                "images_per_second": blank(r.images_per_second, 1),
                "status": r.status,
                "values": ";".join(f"{v:.4f}" for v in r.values),
                "devices": ";".join(r.devices),
                "versions": ";".join(r.versions),
            }
        )
    return out.getvalue()


def write_plots(table: TableSpec, results: list[RowResult], table_dir: Path) -> list[Path]:
    """Curves per row, the comparison bars, and confusion matrices of the best and worst rows."""
    from cifar_resnets.inference.evaluate import checkpoint_confusion_matrix
    from cifar_resnets.reporting.plots import (
        plot_comparison,
        plot_confusion_matrix,
        plot_rows_training_error,
        plot_training_history,
    )

    written = []
    plots_dir = table_dir / "plots"
    for r in results:
        if r.run_dirs:
            try:
                written.append(
                    plot_training_history(
                        r.run_dirs, plots_dir / f"curves_{r.row.name}.png", title=r.row.name
                    )
                )
            except FileNotFoundError as err:
                print(f"[{table.name}] no curves for {r.row.name}: {err}", file=sys.stderr)
    try:
        runs = {r.row.name: r.run_dirs for r in results if r.run_dirs}
        written.append(plot_rows_training_error(runs, plots_dir / "training_error.png", title=table.title))
    except FileNotFoundError as err:
        print(f"[{table.name}] no training-error figure: {err}", file=sys.stderr)
    written.append(
        plot_comparison(
            [r.row.name for r in results],
            [r.mean for r in results],
            [r.std for r in results],
            [r.row.published for r in results],
            plots_dir / "comparison.png",
            ylabel=table.unit,
            title=table.name,
        )
    )
    finished = [r for r in results if r.mean is not None]
    # Best and worst by the underlying metric (highest accuracy is best whatever the display).
    ranked = sorted(finished, key=lambda r: r.mean if table.display == "accuracy" else -r.mean)
    picks = {"best": ranked[-1], "worst": ranked[0]} if ranked else {}
    if len(ranked) == 1:
        picks = {"best": ranked[0]}
    for label, r in picks.items():
        checkpoint = r.run_dirs[0] / "checkpoints" / "last.ckpt"
        try:
            matrix, classes = checkpoint_confusion_matrix(checkpoint)
        except UserError as err:  # data moved since, a damaged checkpoint: the table still stands
            print(f"[{table.name}] no confusion matrix for {r.row.name}: {err}", file=sys.stderr)
            continue
        written.append(
            plot_confusion_matrix(
                matrix, classes, plots_dir / f"confusion_{label}.png", title=f"{label}: {r.row.name} (test)"
            )
        )
    return written


CURVE_TAGS = ("train/loss_epoch", "train/acc", "val/loss", "val/acc")


def write_curves_csv(results: list[RowResult], path: Path) -> None:
    """Every finished job's epoch curves as one long CSV (row, seed, tag, step, value): the record a
    table's figures are drawn from, small enough to keep beside the table."""
    from cifar_resnets.reporting.runs import read_scalars

    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["row", "seed", "tag", "step", "value"])
        for r in results:
            for seed, run_dir in zip(r.seeds, r.run_dirs):
                scalars = read_scalars(run_dir)
                for tag in CURVE_TAGS:
                    writer.writerows(
                        [r.row.name, seed, tag, step, f"{v:.6g}"] for step, v in scalars.get(tag, [])
                    )


def write_runs_csv(table: TableSpec, jobs: list[Job], record: dict[str, Any], path: Path) -> None:
    fields = ["job", "row", "seed", "status", "reason", table.metric, "epochs", "steps", "fit_seconds",
              "train_images_per_second", "dir", "device", "versions"]  # fmt: skip
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for job in jobs:
            metrics = read_metrics(job.dir) or {}
            state = record.get(job.name, {})
            writer.writerow(
                {
                    "job": job.name,
                    "row": job.row.name,
                    "seed": job.seed,
                    "status": state.get("status", "missing"),
                    "reason": state.get("reason", ""),
                    **{k: metrics.get(k, "") for k in fields[5:10]},
                    "dir": str(job.dir),
                    **dict(
                        zip(("device", "versions"), device_and_versions(metrics) if metrics else ("", ""))
                    ),
                }
            )


def report(table: TableSpec, table_dir: Path, seeds: int, jobs: list[Job], record: dict[str, Any]) -> Path:
    results = gather(table, table_dir, seeds)
    markdown = table_dir / f"{table.name}.md"
    markdown.write_text(to_markdown(table, results))
    (table_dir / "results.csv").write_text(to_csv(table, results))
    write_runs_csv(table, jobs, record, table_dir / "runs.csv")
    write_curves_csv(results, table_dir / "curves.csv")
    write_plots(table, results, table_dir)
    return markdown
