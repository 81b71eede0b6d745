"""Instructions per recorded activity, counted by valgrind: a figure that does not move with
the machine's load, for comparing two versions of the record pipeline.

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/record_instructions.py 2000 setup
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/record_instructions.py 2000 full

Each prints ``Collected : N`` on stderr; (full - setup) / (3 × leads) is the number of CPU
instructions one ``Engine.record`` takes, over the workload of ``pipeline.py`` (seed 002's
scoring, the three buying stages, seed 001's three scenarios) with ``leads`` leads. Set
``PYTHONHASHSEED=0`` for the same count on every run. Timing figures come from pipeline.py;
this one says whether a change made the pipeline do less work.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import workload


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Instructions per recorded activity, counted by valgrind.",
        epilog="Run it under valgrind as the module docstring shows.",
    )
    parser.add_argument("leads", nargs="?", type=int, default=2000, help="leads (default 2000)")
    parser.add_argument(
        "part",
        nargs="?",
        choices=("full", "setup"),
        default="full",
        help="'setup' builds the workload only; 'full' also records it (default)",
    )
    args = parser.parse_args()
    leads, full = args.leads, args.part == "full"
    world, activities = workload(leads, 3)
    gc.collect()
    gc.freeze()
    if full:
        record = world.engine.record
        for activity in activities:
            record(activity)


if __name__ == "__main__":
    main()
