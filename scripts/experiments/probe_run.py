"""Where a learner's money goes, window by window: the learner and one fixed profile on the same market, side by
side (docs/learning-experiments.md). Per 500-task window: profit, price earned, tasks won and bid on, the
ceiling (what its bids could have earned), its reputation at the window's end, and every rival's reputation.

Run: ``.venv/bin/python scripts/experiments/probe_run.py SHAPE SEED [FIXED_PROFILE] [experiment.py]``; SHAPE is
a named market or one of ``new_shapes.SHAPES``. About a minute on one core.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learning_sweep import experiment_learner
from new_shapes import shape_of

import trainer.simulator as simulator
from agentfleet.bidding.context import BidContext
from trainer.simulator import WINDOW, Choice, SimAgent, run_market

TASKS = 3000
Trace = list[tuple[int, str, float | None]]  # per task: reputation, tag, fraction bid (None: none)


def traced(decide: simulator.Decide, log: Trace) -> simulator.Decide:
    """``decide``, recording per task: the reputation, the tag and the fraction bid."""

    def wrapper(ctx: BidContext) -> Choice:
        choice = decide(ctx)
        log.append((ctx.reputation, ctx.tags[0], choice.fraction))
        return choice

    return wrapper


def rivals_traced() -> list[list[int]]:
    """Patch ``fixed_focal`` so every rival records its reputation per task; returns the per-rival lists."""
    seen: list[list[int]] = []
    original = simulator.fixed_focal

    def factory(profile: str) -> simulator.Decide:
        decide = original(profile)
        mine: list[int] = []
        seen.append(mine)

        def wrapper(ctx: BidContext) -> Choice:
            mine.append(ctx.reputation)
            return decide(ctx)

        return wrapper

    simulator.fixed_focal = factory
    return seen


def report(label: str, agents: list[SimAgent], log: Trace, rivals: list[list[int]]) -> None:
    focal = agents[0]
    print(f"--- {label}")
    for start in range(0, TASKS, WINDOW):
        end = start + WINDOW
        window = range(start, end)
        bids = sum(1 for i in window if log[i][2] is not None)
        won = [i for i in window if focal.wins[i]]
        tags = Counter(log[i][1] for i in won)
        fr = [log[i][2] for i in won if log[i][2] is not None]
        mean_fr = sum(fr) / len(fr) if fr else 0.0
        rival_reps = " ".join(f"{r[end - 1]:3d}" for r in rivals)
        print(
            f"{start:5d} profit {sum(focal.profit[start:end]):8.2f} paid {sum(focal.paid[start:end]):8.2f} "
            f"ceiling {sum(focal.ceiling[start:end]):8.2f} offered {sum(focal.offered[start:end]):8.1f} "
            f"bids {bids:3d} won {len(won):3d} frac {mean_fr:.2f} rep {log[end - 1][0]:3d} | rivals {rival_reps} "
            f"| {dict(sorted(tags.items()))}"
        )
    names = [a.name for a in agents[1:]]
    print(
        "rivals:",
        ", ".join(
            f"{n} skill {sum(a.skill.values()) / len(a.skill):.2f} profit {sum(a.profit):.0f}"
            for n, a in zip(names, agents[1:], strict=True)
        ),
    )


def main() -> None:
    shape_name, seed = sys.argv[1], int(sys.argv[2])
    fixed = sys.argv[3] if len(sys.argv) > 3 else "balanced"
    if len(sys.argv) > 4:
        simulator.rl_focal = experiment_learner(sys.argv[4])
    market = shape_of(shape_name)
    original = simulator.fixed_focal
    for label in (f"fixed {fixed}", "learner"):
        simulator.fixed_focal = original
        log: Trace = []
        if label == "learner":
            decide, learn = simulator.rl_focal(seed)
        else:
            decide, learn = original(fixed), None
        rivals = rivals_traced()
        agents = run_market(traced(decide, log), seed=seed, tasks=TASKS, learn=learn, market=market)
        report(label, agents, log, rivals)
    simulator.fixed_focal = original


if __name__ == "__main__":
    main()
