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

import gc
import random
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_fixtures import START, World
from pipeline import MIX

from nurturekit import Activity


def main() -> None:
    leads = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    full = (sys.argv[2] if len(sys.argv) > 2 else "full") == "full"
    world = World()
    rng = random.Random(1)
    for n in range(leads):
        world.lead(
            f"l{n}",
            job_level=rng.choice(["staff", "section_manager", "department_head"]),
            industry=rng.choice(["it", "retail", "finance"]),
            employees=rng.choice([10, 60, 300]),
        )
    activities = []
    for n in range(leads):
        for _ in range(3):
            kind, props = rng.choice(MIX)
            at = START + timedelta(minutes=rng.randrange(60 * 24 * 30))
            activities.append(Activity(lead_id=f"l{n}", kind=kind, at=at, properties=props))
    activities.sort(key=lambda a: a.at)
    world.clock.set(activities[-1].at)
    gc.collect()
    gc.freeze()
    if full:
        record = world.engine.record
        for activity in activities:
            record(activity)


if __name__ == "__main__":
    main()
