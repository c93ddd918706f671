"""An upper bound for pricing: a focal agent that knows every rival's bid before it bids
(docs/learning-experiments.md, fourteenth session).

It bids just under the best rival's weighted bid (the whole reward when nobody else bids; the policy floor
when the price to beat is under it) on the tasks a *rule* picks, and learns nothing. No bidding can earn more
on the tasks it takes, so where it still earns less in its last 500 tasks than in its first, the market moved
(rivals' reputations) beyond what any price wins back, for that choice of tasks. The rules:

- ``pass``: tasks whose fit is at least the pass mark (it never bids to block);
- ``fitN``: tasks whose fit is at least N;
- ``bar``: the learner's own fit bar (``rl.fit_bar``, the balanced profile);
- ``all``: every task (it blocks everything, whatever it costs its reputation);
- ``allfromN``: every task while its reputation is at least N, else the ``pass`` rule.

Run: ``.venv/bin/python scripts/experiments/clairvoyant.py SHAPE[,SHAPE...] SEED[,SEED...] RULE[,RULE...]
[rows.json]``; about a second a run (no torch). With ``rows.json`` (``learning_sweep.py --out``) each line also
shows the learner's first and last 500 on the same market, and the summary counts the runs where the learner
fell behind its first 500 although some rule, priced perfectly, did not. How it sees the bids: ``run_market``
ranks the bids with ``sorted`` once all are in; this module puts its own ``sorted`` into the simulator's
namespace, which prices the focal bid first.
"""

from __future__ import annotations

import builtins
import json
import statistics
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from new_shapes import shape_of

import trainer.simulator as simulator
from agentfleet import policy
from agentfleet.bidding.context import BidContext
from agentfleet.bidding.rl import fit_bar, strongest_fit
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.limits import PASS_SCORE
from trainer.simulator import NO_BID, WINDOW, Choice, SimBid, run_market

TASKS = 3000
UNDER = 0.999  # of the price to beat: just under it (a tie goes to the earlier bid, the focal agent's anyway)


def picks(rule: str) -> Callable[[BidContext], bool]:
    """Which tasks the rule bids on."""
    balanced = AgentLearningConfig.get_profile("balanced")
    if rule == "pass":
        return lambda ctx: ctx.fit_score >= PASS_SCORE
    if rule == "all":
        return lambda ctx: True
    if rule == "bar":
        return lambda ctx: ctx.fit_score >= fit_bar(balanced, ctx.reputation, strongest_fit(ctx))
    if rule.startswith("allfrom"):
        floor = int(rule.removeprefix("allfrom"))
        return lambda ctx: ctx.reputation >= floor or ctx.fit_score >= PASS_SCORE
    if rule.startswith("fit"):
        bar = int(rule.removeprefix("fit"))
        return lambda ctx: ctx.fit_score >= bar
    raise SystemExit(f"unknown rule {rule!r}: pass, all, bar, fitN, allfromN")


def run(shape: str, seed: int, rule: str) -> list[float]:
    """The clairvoyant agent's profit per 500-task window on one market."""
    wanted = picks(rule)
    seen: dict[str, float] = {}

    def decide(ctx: BidContext) -> Choice:
        seen["reputation"], seen["reward"] = ctx.reputation, ctx.reward_wei / 1e18
        return Choice(1.0) if wanted(ctx) else NO_BID  # priced in ``clairvoyant_sorted``

    def clairvoyant_sorted(bids: list[SimBid], key: Any = None) -> list[SimBid]:
        for i, bid in enumerate(bids):
            if bid.agent.name != "focal":
                continue
            others = [other.weighted for other in bids if other is not bid]
            reward, reputation = seen["reward"], seen["reputation"]
            beat = min(others) * (reputation + 1) / reward if others else None
            fraction = policy.clamp_fraction(min(1.0, UNDER * beat)) if beat is not None else 1.0
            bids[i] = SimBid(fraction * reward / (reputation + 1), bid.order, bid.agent, fraction, bid.action)
        return builtins.sorted(bids, key=key)

    simulator.sorted = clairvoyant_sorted  # type: ignore[attr-defined]
    try:
        focal = run_market(decide, seed=seed, tasks=TASKS, market=shape_of(shape))[0]
    finally:
        del simulator.sorted  # type: ignore[attr-defined]
    return [sum(focal.profit[start : start + WINDOW]) for start in range(0, TASKS, WINDOW)]


def numbers(text: str) -> Iterable[int]:
    return (int(part) for part in text.split(",") if part)


def main() -> None:
    shapes, seeds, rules = sys.argv[1].split(","), list(numbers(sys.argv[2])), sys.argv[3].split(",")
    learner = (
        {(r["market"], r["seed"]): r for r in json.loads(Path(sys.argv[4]).read_text())} if len(sys.argv) > 4 else {}
    )
    for shape in shapes:
        kept = dict.fromkeys(rules, 0)
        learner_kept = reachable = 0
        ratios: list[float] = []
        for seed in seeds:
            lasts = []
            for rule in rules:
                windows = run(shape, seed, rule)
                kept[rule] += windows[-1] >= windows[0]
                lasts.append((windows[-1], windows[-1] >= windows[0]))
                row = " ".join(f"{w:7.1f}" for w in windows)
                print(f"{shape} {seed:3d} {rule:10s} {row}  last/first {windows[-1] / max(windows[0], 1e-9):5.2f}")
            mine = learner.get((shape, seed))
            if mine:
                behind = mine["rl_last"] < mine["rl_first"]
                learner_kept += not behind
                reachable += behind and any(ok for _, ok in lasts)
                best = max(last for last, _ in lasts)
                ratios.append(max(0.01, mine["rl_last"]) / best if best > 0 else 1.0)
                print(f"{shape} {seed:3d} learner    first {mine['rl_first']:7.1f} last {mine['rl_last']:7.1f}")
        summary = ", ".join(f"{rule} {n}" for rule, n in kept.items())
        print(f"{shape}: last 500 >= first 500 of {len(seeds)}: {summary}")
        if ratios:
            mean = statistics.geometric_mean(ratios)
            print(
                f"{shape}: learner {learner_kept}; behind where a rule kept it: {reachable}; "
                f"learner last 500 / the best rule's: {mean:.2f} (geometric mean)"
            )


if __name__ == "__main__":
    main()
