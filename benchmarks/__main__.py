"""`python -m benchmarks NAME [--json]`: run one benchmark; with --json the last line printed is one
JSON object of its figures."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

BENCHMARKS = {
    "prior": "benchmarks.prior",
    "mesh": "benchmarks.mesh",
    "guidance": "benchmarks.guidance",
    "edit_quality": "benchmarks.edit_quality",
    "open_edit": "benchmarks.open_edit",
    "bridge": "benchmarks.bridge",
    "addon": "benchmarks.addon",
    "eg3d": "benchmarks.eg3d",
    "hostile": "benchmarks.hostile",
    "interactive": "benchmarks.interactive",
    "gpu": "benchmarks.gpu",
    "invert": "benchmarks.invert",
    "refinement": "benchmarks.refinement",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object (last line)")
    parser.add_argument("--quick", action="store_true", help="fewer samples: a smoke run, not a figure to report")
    args = parser.parse_args(argv)
    module = importlib.import_module(BENCHMARKS[args.name])
    figures = module.run(quick=args.quick)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
