"""The learner on market shapes drawn at random (docs/learning-experiments.md): how it does on shapes nobody
picked, the way a user trying ``agentfleet simulate --competitors ... --strength ...`` would meet them.

Each shape is drawn from its own seed: 0-10 rivals of random profiles, a skill range inside 0.15-0.99, the
focal agent's skill per tag in 0.3-0.95, a reward range inside 0.01-30 ETH, a tag mix of 1-5 per tag, open
or sealed. Every (shape, market seed) pair runs every strategy (``simulator.sweep_row``), ``--jobs`` at a time.

Run: ``.venv/bin/python scripts/experiments/random_shapes.py [--shapes 12] [--seeds 1,2,3] [--jobs 2]
[--learner path/to/experiment.py]`` (an experiment module whose ``rl_focal`` replaces the simulator's).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learning_sweep import experiment_learner

import trainer.simulator as simulator
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.status import AuctionMode
from trainer.simulator import TAGS, MarketShape, geometric_mean_ratio, sweep_row


def drawn(index: int) -> MarketShape:
    """Shape number ``index``: the same shape for the same index on every machine."""
    rng = random.Random(1000 + index)
    rivals = tuple(rng.choice(list(AgentLearningConfig.PROFILES)) for _ in range(rng.randint(0, 10)))
    low = rng.uniform(0.15, 0.8)
    reward_low = 10 ** rng.uniform(-2, 0.5)
    return MarketShape(
        name=f"random{index}",
        competitors=rivals,
        strength=(round(low, 2), round(rng.uniform(low, 0.99), 2)),
        focal_skill=tuple(round(rng.uniform(0.3, 0.95), 2) for _ in TAGS),
        reward=(round(reward_low, 3), round(reward_low * 10 ** rng.uniform(0.1, 1.5), 3)),
        tag_mix=tuple(rng.randint(1, 5) for _ in TAGS),
        mode=rng.choice((AuctionMode.OPEN, AuctionMode.SEALED)),
    )


def _row(index: int, seed: int, learner: str) -> dict[str, Any]:
    if learner:  # spawned: the experiment's learner is put in place in each process
        simulator.rl_focal = experiment_learner(learner)
    return {**sweep_row(seed, 3000, drawn(index)), "shape": index}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=int, default=12)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--learner", default="")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    pairs = [(i, s) for i in range(args.shapes) for s in seeds]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = list(pool.map(_row, *zip(*pairs, strict=True), [args.learner] * len(pairs)))
    behind = 0
    for index in range(args.shapes):
        shape, mine = drawn(index), [r for r in rows if r["shape"] == index]
        print(
            f"{shape.name}: {len(shape.competitors)} rivals {shape.strength}, focal {shape.focal_skill}, reward "
            f"{shape.reward}, mix {shape.tag_mix}, {shape.mode.name.lower()}"
        )
        for r in mine:
            print(
                f"   seed {r['seed']:>3} learner {r['rl_first']:9.2f} -> {r['rl_last']:9.2f}  shading "
                f"{r['shading_last']:9.2f}  best fixed {r['best_fixed']:<18} {r['best_last']:9.2f}"
            )
        ratio = geometric_mean_ratio(mine)
        kept = sum(r["rl_last"] >= r["rl_first"] for r in mine)
        behind += len(mine) - kept
        print(f"   learner / best fixed {'-' if ratio is None else f'{ratio:.2f}x'}, kept {kept}/{len(mine)}")
    print(
        f"behind their first 500: {behind} of {len(rows)}; learner / best fixed over all: {geometric_mean_ratio(rows)}"
    )


if __name__ == "__main__":
    main()
