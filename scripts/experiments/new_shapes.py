"""The learner on market shapes the named ones do not cover (docs/learning-experiments.md): one sweep row per
(shape, seed), every strategy run (``simulator.sweep_row``), printed with the geometric mean per shape.

Run: ``.venv/bin/python scripts/experiments/new_shapes.py [shape,...] [seed,...] [path/to/experiment.py]``
(a shape is one below or a named market; ``JOBS=2`` runs two pairs at once; an experiment module is imported
first: the learners above patch the simulator when their ``rl_focal`` is called, so pass ``log_reputation.py``
to measure that one). Each pair takes about a minute on one core.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learning_sweep import experiment_learner

import trainer.simulator as simulator
from trainer.simulator import MARKETS, MarketShape, geometric_mean_ratio, sweep_row

_FIVE = MARKETS["default"].competitors
SHAPES = {
    "micro": replace(MARKETS["default"], name="micro", reward=(0.005, 0.05)),
    "monopoly": replace(MARKETS["default"], name="monopoly", competitors=()),
    "elite": replace(MARKETS["default"], name="elite", strength=(0.85, 0.99)),
    "aggressors": replace(MARKETS["default"], name="aggressors", competitors=("aggressive",) * 5),
    "weakfocal": replace(MARKETS["default"], name="weakfocal", focal_skill=(0.5, 0.45, 0.4, 0.55, 0.5)),
    "skewed": replace(MARKETS["default"], name="skewed", tag_mix=(1, 1, 5, 1, 1)),
    "large": replace(MARKETS["default"], name="large", reward=(5.0, 50.0)),
    "crowdsealed": replace(MARKETS["crowded"], name="crowdsealed", mode=MARKETS["sealed"].mode),
    "duo": replace(MARKETS["default"], name="duo", competitors=("aggressive",), strength=(0.6, 0.9)),
    "six": replace(MARKETS["default"], name="six", competitors=(*_FIVE, "aggressive")),
    "eight": replace(MARKETS["default"], name="eight", competitors=(*_FIVE, "balanced", "aggressive", "conservative")),
    "ten": replace(MARKETS["default"], name="ten", competitors=_FIVE * 2),
    "twelve": replace(MARKETS["default"], name="twelve", competitors=_FIVE * 2 + ("explorer", "balanced")),
    "eightstrong": replace(
        MARKETS["default"],
        name="eightstrong",
        competitors=(*_FIVE, "balanced", "aggressive", "conservative"),
        strength=(0.6, 0.95),
    ),
}


def shape_of(name: str) -> MarketShape:
    """A shape of this file's or a named market (``trainer.simulator.MARKETS``)."""
    return SHAPES[name] if name in SHAPES else MARKETS[name]


def _row(name: str, seed: int) -> dict[str, Any]:
    return sweep_row(seed, 3000, shape_of(name))


def main() -> None:
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else list(SHAPES)
    seeds = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else [1, 2, 3]
    if len(sys.argv) > 3:  # an experiment's learner replaces the simulator's rl_focal for every row (forked)
        simulator.rl_focal = experiment_learner(sys.argv[3])
    jobs = int(os.environ.get("JOBS", "1"))
    pairs = [(name, seed) for name in names for seed in seeds]
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        done = dict(zip(pairs, pool.starmap(_row, pairs), strict=True))
    for name in names:
        rows = []
        for seed in seeds:
            row = done[(name, seed)]
            rows.append(row)
            print(
                f"{name:<12} {seed:>3} learner {row['rl_first']:9.2f} -> {row['rl_last']:9.2f}  shading "
                f"{row['shading_last']:9.2f}  best fixed {row['best_fixed']:<18} {row['best_last']:9.2f}",
                flush=True,
            )
        ratio = geometric_mean_ratio(rows)
        kept = sum(r["rl_last"] >= r["rl_first"] for r in rows)
        print(f"== {name}: learner / best fixed {'-' if ratio is None else f'{ratio:.2f}x'}, kept {kept}/{len(rows)}")


if __name__ == "__main__":
    main()
