"""Benchmark the learning path: outcomes/s trained, and bid-decision latency against a bare forward pass.

Run: ``.venv/bin/python -m bench.trainer [--outcomes 300] [--decisions 2000] [--shard-outcomes 800]
[--shard-rounds 8]``.

- trained outcomes/s: what ``trainer.tasks.record_outcome`` does per message, minus Redis and Celery: the
  agent kept in memory (``trainer.learners``), the transition with the levels it tells in hindsight
  (``reward.hindsight``) and 4 gradient steps, one journal line, a full checkpoint every 50 outcomes.
  Baseline: the 4 gradient steps alone on a model kept in memory. Also printed: the path before issue 13
  (load the model from disk, train, write it whole, per outcome).
- decision latency: ``RLBiddingStrategy.decide`` (new-version check by ``stat``, state encoding, act,
  policy bounds) against a bare forward pass of the same network; p50/p99 over the decisions.
- trainer shards: the trainer path (the same ``Learners`` work per outcome, torch on one thread) in ONE process
  learning 8 agents, against TWO processes in parallel, each learning the 4 agents of its shard
  (``routing.shard_of(agent, 2)``), as two trainers holding one shard each do. Each process warms up first
  (models loaded, first checkpoints written, torch's kernels hot), then every round starts at one barrier;
  outcomes/s is the round's outcomes over its wall time, from the barrier to the last process done, best of
  the rounds (the one the machine's other work disturbed least; rounds alternate between ONE and TWO). The
  ratio is the speed-up; on a 2-core machine it shows on an idle one only.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import statistics
import tempfile
import threading
import time
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import torch

from agentfleet.bidding.context import BidContext
from agentfleet.bidding.dqn import ReinforcementLearning, load_or_fresh
from agentfleet.bidding.market import KEPT, MarketFeatures
from agentfleet.bidding.policy_net import PolicyCache
from agentfleet.bidding.rl import RLBiddingStrategy
from agentfleet.bidding.state import ACTIONS, STATE_SIZE
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.routing import shard_of
from trainer.integration import LearningIntegration
from trainer.learners import Learners, Lesson

AGENT = "0xbench"
HINDSIGHT = {action: 0.1 for action in range(ACTIONS) if action != 3}  # what a won auction tells of every level
SHARD_AGENTS = 4  # per shard
WARMUP = 200  # outcomes per process before the barrier


def shard_agents(shards: int = 2) -> list[list[str]]:
    """``SHARD_AGENTS`` bench agents of each shard, by the fleet's own routing hash."""
    found: list[list[str]] = [[] for _ in range(shards)]
    number = 0
    while any(len(agents) < SHARD_AGENTS for agents in found):
        agent = f"0xbench{number:04d}"
        if len(found[shard_of(agent, shards)]) < SHARD_AGENTS:
            found[shard_of(agent, shards)].append(agent)
        number += 1
    return found


def learn_agents(agents: list[str], outcomes: int, start: Barrier, results: Any) -> None:
    """One trainer process: the trainer path for ``agents`` (round robin), ``outcomes`` per round, each round
    started at a barrier shared with the other processes of its measurement and the bench."""
    torch.set_num_threads(1)
    models = Path(tempfile.mkdtemp())
    learners = Learners(models)  # the trainer's defaults: a checkpoint every 50 outcomes or 30 s
    state = [0.5] * STATE_SIZE
    for agent in agents:
        model = ReinforcementLearning(agent, batch_size=64)
        for _ in range(64):
            model.remember(state, 3, 0.2, state, True)
        learners.get(agent, lambda a=agent, m=model: LearningIntegration(a, {"research": 80.0}, m, models_dir=models))

    def run(prefix: str, count: int) -> None:
        for n in range(count):
            agent = agents[n % len(agents)]
            learners.learn(agent, Lesson(f"{prefix}{n}:{agent}", state, n % ACTIONS, 0.2, hindsight=HINDSIGHT))

    run("warm", WARMUP)
    for number in itertools.count():
        try:
            start.wait()
        except threading.BrokenBarrierError:  # the bench is done
            return
        began = time.perf_counter()  # CLOCK_MONOTONIC: comparable between processes
        run(f"{number}-", outcomes)
        results.put((began, time.perf_counter()))


class Trainers:
    """Trainer processes, one per group of agents, each round started together and timed."""

    def __init__(self, groups: list[list[str]], outcomes: int) -> None:
        context = multiprocessing.get_context("spawn")  # no torch state inherited by a fork
        self.start, self.results = context.Barrier(len(groups) + 1), context.Queue()
        self.outcomes = outcomes // len(groups) * len(groups)
        self.processes = [
            context.Process(target=learn_agents, args=(g, outcomes // len(groups), self.start, self.results))
            for g in groups
        ]
        for process in self.processes:
            process.start()

    def round(self) -> float:
        """Outcomes/s of one round: every process's outcomes over the wall time until the last one is done."""
        self.start.wait()
        spans = [self.results.get(timeout=600) for _ in self.processes]
        return self.outcomes / (max(end for _, end in spans) - min(began for began, _ in spans))

    def close(self) -> None:
        self.start.abort()
        for process in self.processes:
            process.join(timeout=60)


def shard_rates(outcomes: int, rounds: int) -> tuple[float, float]:
    """(ONE process learning every agent, TWO processes learning a shard each): outcomes/s, the best round of
    each; rounds alternate between the two, so that the machine's other work disturbs both alike."""
    shards = shard_agents(2)
    one, two = Trainers([shards[0] + shards[1]], outcomes), Trainers(shards, outcomes)
    try:
        rates = [(one.round(), two.round()) for _ in range(rounds)]
    finally:
        one.close()
        two.close()
    return max(r for r, _ in rates), max(r for _, r in rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outcomes", type=int, default=300)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--shard-outcomes", type=int, default=800, help="outcomes per round of the shard figures")
    parser.add_argument("--shard-rounds", type=int, default=8, help="rounds of the shard figures (the best counts)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = Path(tempfile.mkdtemp())
    state = [0.5] * STATE_SIZE

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
        learners.learn(AGENT, Lesson(f"{n}:{AGENT}", state, 3, 0.2, hindsight=HINDSIGHT))
    journaled = args.outcomes / (time.perf_counter() - began)

    strategy = RLBiddingStrategy(AGENT, AgentLearningConfig.get_profile("balanced"), PolicyCache(models), warmup=0)
    ctx = BidContext(
        task_id=1,
        reward_wei=10**18,
        tags=["research"],
        fit_score=80,
        capability_weights={"research": 80},
        reputation=60,
        market=MarketFeatures(clearing=[0.01 + i / 10_000 for i in range(KEPT)], bidders=4.0),  # a full window
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
    one, two = shard_rates(args.shard_outcomes, args.shard_rounds)
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
    print(f"{'shards: ONE trainer process, 8 agents (outcomes/s, baseline)':<60}{one:>14.0f}{1.0:>8.2f}")
    print(f"{'shards: TWO trainer processes, 4 agents each (outcomes/s)':<60}{two:>14.0f}{two / one:>8.2f}")


if __name__ == "__main__":
    main()
