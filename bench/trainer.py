"""Benchmark the learning path: outcomes/s trained, and bid-decision latency against a bare forward pass.

Run: ``.venv/bin/python -m bench.trainer [--outcomes 300] [--decisions 2000]``.

- trained outcomes/s: what ``trainer.tasks.record_outcome`` does per message, minus Redis and Celery: the
  agent kept in memory (``trainer.learners``), the transition and 4 gradient steps, one journal line, a full
  checkpoint every 50 outcomes. Baseline: the 4 gradient steps alone on a model kept in memory. Also printed:
  the path before issue 13 (load the model from disk, train, write it whole, per outcome).
- decision latency: ``RLBiddingStrategy.decide`` (new-version check by ``stat``, state encoding, act,
  policy bounds) against a bare forward pass of the same network; p50/p99 over the decisions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from agentfleet.bidding.context import BidContext
from agentfleet.bidding.dqn import ReinforcementLearning, load_or_fresh
from agentfleet.bidding.policy_net import PolicyCache
from agentfleet.bidding.rl import RLBiddingStrategy
from agentfleet.profiles import AgentLearningConfig
from trainer.integration import LearningIntegration
from trainer.learners import Learners, Lesson

AGENT = "0xbench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=300)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = Path(tempfile.mkdtemp())
    state = [0.5] * 8

    warm = ReinforcementLearning(AGENT, batch_size=64)
    for _ in range(64):
        warm.remember(state, 3, 0.2, state, True)
    warm.save(models)

    began = time.perf_counter()
    for _ in range(args.outcomes):
        model = load_or_fresh(AGENT, models, batch_size=64)
        model.remember(state, 3, 0.2, state, True)
        for _ in range(4):
            model.train_step()
        model.save(models)
    full = args.outcomes / (time.perf_counter() - began)

    began = time.perf_counter()
    for _ in range(args.outcomes):
        for _ in range(4):
            warm.train_step()
    bare_train = args.outcomes / (time.perf_counter() - began)

    journaled_dir = Path(tempfile.mkdtemp())
    learners = Learners(journaled_dir)  # the trainer's defaults: a checkpoint every 50 outcomes or 30 s
    learners.get(AGENT, lambda: LearningIntegration(AGENT, {"research": 80.0}, warm, models_dir=journaled_dir))
    began = time.perf_counter()
    for n in range(args.outcomes):
        learners.learn(AGENT, Lesson(f"{n}:{AGENT}", state, 3, 0.2))
    journaled = args.outcomes / (time.perf_counter() - began)

    strategy = RLBiddingStrategy(AGENT, AgentLearningConfig.get_profile("balanced"), PolicyCache(models))
    ctx = BidContext(
        task_id=1,
        reward_wei=10**18,
        tags=["research"],
        fit_score=80,
        capability_weights={"research": 80},
        reputation=60,
    )
    strategy.decide(ctx)  # first call loads the model
    ours, bare = [], []
    net, x = warm.q, torch.tensor([state])
    for _ in range(args.decisions):
        t0 = time.perf_counter_ns()
        strategy.decide(ctx)
        t1 = time.perf_counter_ns()
        with torch.no_grad():
            net(x).argmax(dim=1)
        t2 = time.perf_counter_ns()
        ours.append((t1 - t0) / 1000)
        bare.append((t2 - t1) / 1000)

    def q(values: list[float]) -> tuple[float, float]:
        cuts = statistics.quantiles(values, n=100)
        return cuts[49], cuts[98]

    (o50, o99), (b50, b99) = q(ours), q(bare)
    print(f"{'measurement':<60}{'value':>14}{'ratio':>8}")
    print(f"{'4 gradient steps on an in-memory model (outcomes/s, baseline)':<60}{bare_train:>14.0f}{1.0:>8.2f}")
    print(f"{'before: load, remember, 4 steps, atomic save (outcomes/s)':<60}{full:>14.0f}{full / bare_train:>8.2f}")
    trainer_path = "trainer path: in memory, journaled, checkpoint / 50 (outcomes/s)"
    print(f"{trainer_path:<60}{journaled:>14.0f}{journaled / bare_train:>8.2f}")
    print(f"{'bare forward pass p50 / p99 (us, baseline)':<60}{f'{b50:.0f} / {b99:.0f}':>14}{1.0:>8.2f}")
    print(
        f"{'RLBiddingStrategy.decide incl. version check p50 / p99 (us)':<60}{f'{o50:.0f} / {o99:.0f}':>14}"
        f"{o50 / b50:>8.2f}"
    )


if __name__ == "__main__":
    main()
