"""The market simulator: the learning agent improves, runs are reproducible, market shapes are parameters, the
CLI prints per-market rows with their geometric mean and writes its plot."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from agentfleet.bidding.context import BidContext
from agentfleet.bidding.market import SCORES_KEPT
from agentfleet.bidding.state import MIN_SCORES
from agentfleet.profiles import AgentLearningConfig
from agentfleet.protocol.limits import FAILURE_PENALTY
from trainer.simulator import (
    MARKETS,
    Choice,
    Settled,
    SimAgent,
    compare,
    fixed_focal,
    geometric_mean_ratio,
    hardened,
    rl_focal,
    run_market,
    shading_focal,
    shaped,
    summary,
    why_behind,
)

ROOT = Path(__file__).resolve().parent.parent


def test_learning_agent_improves_and_beats_every_fixed_profile_and_runs_reproduce() -> None:
    """Seed 5, 3000 tasks (README "Learning" has every seed and market shape)."""
    results = compare(seed=5, tasks=3000)
    rows = {row["strategy"]: row for row in summary(results)}
    assert set(rows) == {"rl", "shading", *AgentLearningConfig.PROFILES}
    rl, shading = rows.pop("rl"), rows.pop("shading")
    assert rl["last"] >= rl["first"]  # it did not get worse than where it started
    best = max(rows.values(), key=lambda row: row["last"])
    assert rl["last"] > 1.2 * best["last"], (rl, best)  # and out-earns the best fixed profile of the same skill
    assert shading["last"] > best["last"]  # the baseline that knows the market beats the fixed profiles too
    assert compare(seed=5, tasks=300)["rl"].profit == compare(seed=5, tasks=300)["rl"].profit  # same seed, same run


def test_market_shapes_are_parameters() -> None:
    decide, learn = shading_focal()
    crowded = run_market(decide, seed=1, tasks=200, learn=learn, market=MARKETS["crowded"])
    assert len(crowded) == 1 + len(MARKETS["crowded"].competitors) == 16
    whales = run_market(decide, seed=1, tasks=200, learn=learn, market=MARKETS["whales"])
    assert max(whales[0].profit) > 2  # a whale's reward is worth more than any default task
    lopsided = shaped("default", tag_mix=(1, 0, 0, 0, 0))
    agents = run_market(decide, seed=1, tasks=100, learn=learn, market=lopsided)
    assert all(score >= 0 for score in agents[0].scores)
    with pytest.raises(ValueError, match="unknown market"):
        shaped("nowhere")
    with pytest.raises(ValueError, match="one value per tag"):
        shaped("default", focal_skill=(0.5,))
    for wrong, words in (
        ({"focal_skill": (85, 75, 45, 30, 80)}, "each 0..1"),
        ({"strength": (0.9, 0.3)}, "low <= high"),
        ({"reward": (0.0, 1.0)}, "0 < low"),
        ({"reward": (1.0, math.inf)}, "0 < low"),
        ({"strength": (math.nan, 0.5)}, "low <= high"),
        ({"tag_mix": (0, 0, 0, 0, 0)}, "some positive"),
        ({"tag_mix": (1, math.nan, 1, 1, 1)}, "none negative"),
        ({"competitors": ("balanced", "greedy")}, "unknown competitor profile 'greedy'"),
    ):
        with pytest.raises(ValueError, match=words):
            shaped("default", **wrong)
    assert shaped("default", competitors=()).competitors == ()  # a market with no rivals runs


def test_capability_weights_follow_the_scores_as_on_chain() -> None:
    """Each scored task moves its winner's weight of the tag a quarter of the way to the score (the
    IncentiveEngine's rule, tests/test_contracts.py): a weight drawn too high or too low comes back toward the
    agent's true skill on the tags it wins, rivals' and focal agent's alike; with
    ``weights_follow_scores=False`` they stay as drawn."""
    focal = fixed_focal("balanced")
    drawn = run_market(focal, seed=3, tasks=600, market=shaped("default", weights_follow_scores=False))
    followed = run_market(focal, seed=3, tasks=600, market=MARKETS["default"])
    assert [a.skill for a in followed] == [a.skill for a in drawn] and sum(sum(a.wins) for a in followed) == 600

    def error(weights: dict[str, int], skill: dict[str, float]) -> float:
        return sum(abs(weights[tag] - 100 * value) for tag, value in skill.items())

    before = sum(error(a.weights, a.skill) for a in drawn)
    assert sum(error(a.weights, a.skill) for a in followed) < before  # tags nobody wins stay as drawn
    moved = 0
    for old, new in zip(drawn, followed, strict=True):
        for tag in (tag for tag in old.weights if new.weights[tag] != old.weights[tag]):
            moved += 1  # 0.25 of the gap per score, each score 100 x skill +- 12: it ends near the skill
            assert abs(new.weights[tag] - 100 * old.skill[tag]) < 16, (new.name, tag, new.weights, old.skill)
    assert moved >= 10


def test_an_agents_score_on_a_task_is_the_same_whoever_else_won() -> None:
    """Common random numbers: every task draws a score for every agent, so two focal strategies on the same
    seed meet the same scores wherever the same agent wins the same task (drawn for the winner alone, one
    different winner re-drew every later score of every agent)."""
    runs = [run_market(fixed_focal(profile), seed=2, tasks=400) for profile in ("balanced", "aggressive")]

    def winners(agents: list[SimAgent]) -> list[int]:
        return [next((i for i, a in enumerate(agents) if a.wins[step]), -1) for step in range(400)]

    assert winners(runs[0]) != winners(runs[1])  # the two markets part
    shared = 0
    for a, b in zip(*runs, strict=True):
        mine = [dict(zip([s for s, w in enumerate(x.wins) if w], x.scores, strict=True)) for x in (a, b)]
        both = mine[0].keys() & mine[1].keys()
        shared += len(both)
        assert all(mine[0][step] == mine[1][step] for step in both), a.name
    assert shared >= 100


def test_the_geometric_mean_counts_markets_where_a_fixed_profile_earned() -> None:
    rows = [
        {"rl_last": 200.0, "best_last": 100.0},
        {"rl_last": 50.0, "best_last": 100.0},
        {"rl_last": 10.0, "best_last": -3.0},  # no fixed profile earned: left out
    ]
    assert geometric_mean_ratio(rows) == pytest.approx(1.0)
    assert geometric_mean_ratio([{"rl_last": -5.0, "best_last": 10.0}]) == pytest.approx(0.01)  # the floor
    assert geometric_mean_ratio(rows[2:]) is None


def test_no_bid_is_paid_more_than_the_ceiling_and_a_hardened_market_is_told_apart() -> None:
    """The ceiling of a task (``ceiling_of``: just under the price to beat) bounds what any bid on it was paid;
    a run behind its first 500 is called hardened only when that bound says no bidding could have caught up."""
    decide, learn = shading_focal()
    focal = run_market(decide, seed=2, tasks=400, learn=learn, market=MARKETS["sparse"])[0]
    assert len(focal.paid) == len(focal.ceiling) == 400
    assert sum(paid > 0 for paid in focal.paid) > 50
    assert all(paid <= ceiling + 1e-9 for paid, ceiling in zip(focal.paid, focal.ceiling, strict=True))
    assert sum(focal.ceiling) > sum(focal.paid)  # a first-price bidder leaves something under the price to beat
    rows = [
        {"seed": 1, "rl_first": 100.0, "rl_last": 90.0, "rl_paid_first": 300.0, "ceiling_last": 280.0},  # hardened
        {"seed": 2, "rl_first": 100.0, "rl_last": 90.0, "rl_paid_first": 300.0, "ceiling_last": 320.0},  # could have
        {"seed": 3, "rl_first": 100.0, "rl_last": 110.0, "rl_paid_first": 300.0, "ceiling_last": 280.0},  # not behind
    ]
    assert [r["seed"] for r in hardened(rows)] == [1]


def test_what_the_market_offered_is_the_same_for_every_strategy_and_explains_a_run_behind() -> None:
    """The money on offer (rewards of the tasks on tags the agent expects to pass) is the market's draw: the
    same whatever the focal agent bids, and it tells a run that fell behind because there was less to earn."""
    shading = run_market(shading_focal()[0], seed=14, tasks=600, market=MARKETS["default"])[0]
    fixed = run_market(fixed_focal("conservative"), seed=14, tasks=600, market=MARKETS["default"])[0]
    assert shading.offered == fixed.offered and len(shading.offered) == 600
    passable = {tag for tag, fit in shading.weights.items() if fit >= 50}
    assert 0 < len(passable) < 5  # the focal agent expects to fail some tags: their tasks are not on offer
    assert 100 < sum(reward > 0 for reward in shading.offered) < 500  # about 3 tasks in 5
    row = {
        "seed": 14,
        "rl_first": 200.0,
        "rl_last": 180.0,
        "rl_paid_first": 300.0,
        "ceiling_last": 280.0,
        "offered_first": 366.0,
        "offered_last": 331.0,
        "best_fixed": "balanced",
        "best_first": 190.0,
        "best_last": 100.0,
    }
    text = why_behind(row)
    assert "offered 331 ETH in its last 500 against 366 in its first (-10%)" in text
    assert "hardened" in text and "(balanced) earned 0.53x" in text
    assert "hardened" not in why_behind({**row, "ceiling_last": 320.0})


def test_simulate_command_prints_a_table_and_writes_a_png(tmp_path: Path, artifacts_out: Path) -> None:
    png = artifacts_out / "simulation.png"
    result = subprocess.run(
        [sys.executable, "-m", "shell.cli", "simulate", "--tasks", "600", "--out", str(png)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "workload_sensitive" in result.stdout and "rl" in result.stdout and "shading" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_seeds_prints_rows_per_market_and_their_geometric_mean() -> None:
    command = [sys.executable, "-m", "shell.cli", "simulate", "--tasks", "300", "--seeds", "1,2", "--market", "sparse"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sparse") >= 3 and "geometric mean" in result.stdout
    parallel = subprocess.run([*command, "--jobs", "2"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert parallel.returncode == 0, parallel.stderr

    def rows(out: str) -> list[str]:
        return [line for line in out.splitlines() if "sparse" in line]

    assert rows(parallel.stdout) == rows(result.stdout)  # seeds in two processes: the same rows, in seed order
    bad = subprocess.run([*command[:-1], "nowhere"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "unknown market" in bad.stderr
    assert all(name in bad.stderr for name in MARKETS)  # the error names every shape


def test_simulate_shape_options_change_the_named_market() -> None:
    """A market shape the names miss, from the command line: the named shape with fields replaced, its rows
    marked with a '*' and described; a wrong knob is a usage error naming what is wrong, and runs nothing."""
    base = [sys.executable, "-m", "shell.cli", "simulate", "--tasks", "200", "--seeds", "1", "--market", "sparse"]
    run = subprocess.run(
        [*base, "--competitors", "none", "--focal-skill", "0.9,0.9,0.9,0.9,0.9", "--auction", "sealed"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    assert "sparse*: sparse with competitors none, focal skill 0.9" in run.stdout and "mode sealed" in run.stdout
    assert "sparse* " in run.stdout.replace("│", " ")  # the row carries the changed shape's name
    for option, value, words in (
        ("--strength", "0.9,0.3", "low <= high"),
        ("--focal-skill", "85,75,45,30,80", "each 0..1"),
        ("--competitors", "balanced,greedy", "unknown competitor profile 'greedy'"),
        ("--reward", "a,b", "comma-separated numbers"),
        ("--auction", "closed", "open or sealed"),
        ("--weights", "learned", "follow or fixed"),
    ):
        bad = subprocess.run([*base, option, value], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert bad.returncode == 2 and words in " ".join(bad.stderr.replace("│", " ").split()), (option, bad.stderr)
        assert "markets" not in bad.stdout  # nothing ran


def test_the_learner_is_told_the_best_rivals_recent_moves_on_the_tag() -> None:
    """What the fleet's trainer reads from ``agentfleet:moves``: the simulator keeps it from its own scores."""
    told: list[tuple[float | None, bool]] = []
    decide, _ = shading_focal()

    def learn(ctx: BidContext, settled: Settled) -> None:
        told.append((settled.rival_move, settled.rivals))

    agents = run_market(decide, seed=3, tasks=300, learn=learn)
    moves = [move for move, _rivals in told if move is not None]
    assert len(moves) > 100 and all(-FAILURE_PENALTY <= move <= 10 for move in moves)
    assert all(move is None for move, rivals in told if not rivals)  # nobody to hand the task to
    assert any(move < 0 for move in moves) and any(move > 0 for move in moves)  # a reckless rival's sinks it
    assert any(min(agent.scores, default=100) < 50 for agent in agents[1:])


def test_the_focal_agent_sees_its_own_recent_scores_on_the_tag_as_the_fleets_trainer_keeps_them() -> None:
    """What the fleet's trainer keeps in ``agentfleet:scores`` (``state.learned_fit`` reads it): the simulator
    gives the focal agent its own scores of the tag, newest first, the newest ``SCORES_KEPT``."""
    seen: list[tuple[int, str, list[float]]] = []
    strategy = fixed_focal("aggressive")

    def decide(ctx: BidContext) -> Choice:
        seen.append((ctx.task_id, ctx.tags[0], list(ctx.market.scores if ctx.market else [])))
        return strategy(ctx)

    focal = run_market(decide, seed=5, tasks=400)[0]
    history = dict(zip([step for step, won in enumerate(focal.wins) if won], focal.scores, strict=True))
    assert len(history) > 50
    checked = 0
    for task_id, tag, scores in seen:
        before = [history[step] for step in range(task_id - 1) if step in history and seen[step][1] == tag]
        assert scores == [float(int(score)) for score in reversed(before)][:SCORES_KEPT]
        checked += len(scores) >= MIN_SCORES
    assert checked > 100


def test_the_simulator_builds_its_learner_as_the_trainer_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the simulator measures is the learner the fleet trains: the same ``dqn.model_options`` of the
    profile (the trainer's ``_learning``), the seed's batch and memory defaults."""
    from agentfleet.bidding import dqn

    built: list[dict[str, object]] = []
    build = dqn.ReinforcementLearning.__init__

    def recording(self: dqn.ReinforcementLearning, *args: object, **kwargs: object) -> None:
        built.append(kwargs)
        build(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dqn.ReinforcementLearning, "__init__", recording)
    rl_focal(seed=1)
    profile = AgentLearningConfig.get_profile("balanced")
    assert built == [{"seed": 1, **dqn.model_options(profile)}]
    assert dqn.model_options(profile) == {"learning_rate": profile.learning_rate, "discount_factor": 0.95}
