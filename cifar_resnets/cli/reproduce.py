"""``cifar-reproduce``: rerun a published results table and write it beside the published numbers.

``cifar-reproduce --list`` names the tables; the outputs are described in ``cifar_resnets.reproduce.report``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cifar_resnets.cli.common import user_errors
from cifar_resnets.errors import ConfigError
from cifar_resnets.reproduce.plan import list_tables
from cifar_resnets.reproduce.runner import reproduce
from cifar_resnets.reproduce.spec import table_names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-reproduce",
        description="Rerun a published results table and write it beside the published numbers.",
        epilog="Extra key=value arguments are Hydra overrides for every job, e.g. hydra/launcher=joblib.",
    )
    parser.add_argument("table", nargs="?", help=f"one of: {', '.join(table_names())}; or a table .yaml file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to every job")
    parser.add_argument(
        "--list", action="store_true", help="list the tables (with TABLE: its rows) and costs"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny CPU version of every row (synthetic data)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per row (default: the table's)")
    parser.add_argument(
        "--rows", default=None, help="run only these rows (comma-separated names); the report keeps every row"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default outputs/tables/TABLE)")
    parser.add_argument("--data-root", default=None, help="folder holding the datasets (paths.data_dir)")
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="rows run at the same time, each on its share of the CPU cores (default 1)",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run jobs inside this process (no launcher; for smoke runs)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite the table from finished jobs"
    )
    args = parser.parse_intermixed_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise ConfigError(f"overrides must look like key=value, got {bad}")
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {args.seeds}")
    if args.parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {args.parallel}")
    if not args.list and not args.table:
        raise ConfigError(f"name a table ({', '.join(table_names())}) or use --list")
    if args.data_root and not Path(args.data_root).is_dir():
        raise ConfigError(f"--data-root {args.data_root} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    with user_errors("cifar-reproduce"):
        args = parse_args(argv)
        if args.list:
            print(list_tables([args.table] if args.table else None))
            return 0
        code = reproduce(args)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
