"""The DQN: determinism, save/load round trips, atomic writes under a concurrent reader, corrupt files."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from agentfleet.bidding.dqn import ModelLoadError, ReinforcementLearning, load_or_fresh
from agentfleet.bidding.state import ACTIONS, STATE_SIZE, BidState

torch.set_num_threads(1)
AGENT = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def trained(seed: int, steps: int = 150) -> ReinforcementLearning:
    model = ReinforcementLearning(AGENT, seed=seed, batch_size=16)
    rng = random.Random(seed)
    for _ in range(steps):
        state = [rng.random() for _ in range(STATE_SIZE)]
        action = model.act(state)
        reward = (state[0] - 0.5) * (1 if action else 0)
        model.remember(state, action, reward, state, True)
        model.train_step()
    return model


def probe(model: ReinforcementLearning) -> list[int]:
    rng = random.Random(99)
    return [model.act([rng.random() for _ in range(STATE_SIZE)], explore=False) for _ in range(50)]


def test_same_seed_same_run_and_save_load_same_decisions(tmp_path: Path) -> None:
    a, b = trained(7), trained(7)
    assert probe(a) == probe(b)
    assert all(torch.equal(x, y) for x, y in zip(a.q.state_dict().values(), b.q.state_dict().values(), strict=True))
    a.save(tmp_path)
    restored = ReinforcementLearning(AGENT, seed=123, batch_size=16)
    restored.load(tmp_path)
    assert probe(restored) == probe(a) and restored.version == 1 and restored.memory.size == a.memory.size
    # Training continues identically after a restart (replay memory and RNG state survive).
    a.train_step()
    restored.train_step()
    assert probe(restored) == probe(a)


def test_state_vector_is_bounded_for_any_input() -> None:
    weird = BidState(
        fit=1e9,
        capability=-5,
        reputation=float("nan"),
        workload=1e6,
        reward_eth=-1,
        deadline_s=1e12,
        win_rate=3,
        competition=-2,
    )
    assert all(0.0 <= v <= 1.0 for v in weird.vector())
    model = ReinforcementLearning(AGENT)
    assert 0 <= model.act(weird.vector(), explore=False) < ACTIONS


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_model_is_reported_and_replaced_by_a_fresh_one(tmp_path: Path, damage: str) -> None:
    path = trained(1, steps=20).save(tmp_path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not a model" * 50, "empty": b""}[damage])
    with pytest.raises(ModelLoadError, match=path.name):
        ReinforcementLearning(AGENT).load(tmp_path)
    fresh = load_or_fresh(AGENT, tmp_path)
    assert fresh.version == 0 and fresh.memory.size == 0
    assert path.with_suffix(".pt.corrupt").exists()


def test_reader_never_sees_a_half_written_model(tmp_path: Path) -> None:
    reader = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from agentfleet.bidding.dqn import ReinforcementLearning
        ok = bad = 0
        start = time.monotonic()  # at least 4 s of reads and 10 good ones (a loaded CI machine reads slowly)
        while time.monotonic() < start + 4 or (ok < 10 and time.monotonic() < start + 120):
            model = ReinforcementLearning({AGENT!r})
            try:
                model.load(Path({str(tmp_path)!r}))
                ok += 1
            except FileNotFoundError:
                continue
            except Exception as exc:
                bad += 1
                print("BAD", exc, file=sys.stderr)
        print(ok, bad)
        """
    )
    model = trained(3, steps=40)
    model.save(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", reader],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    writes = 0
    while proc.poll() is None:
        model.train_step()
        model.save(tmp_path)
        writes += 1
    out, err = proc.communicate()
    ok, bad = map(int, out.split())
    assert bad == 0, err[-2000:]
    assert ok > 5 and writes > 5


def test_workers_pick_up_new_versions_and_survive_corrupt_ones(tmp_path: Path) -> None:
    from agentfleet import policy
    from agentfleet.bidding.context import BidContext
    from agentfleet.bidding.policy_net import PolicyCache
    from agentfleet.bidding.rl import RLBiddingStrategy
    from agentfleet.profiles import AgentLearningConfig

    cache = PolicyCache(tmp_path)
    fresh = cache.get(AGENT)
    assert fresh.version == 0 and cache.get(AGENT) is fresh  # no file: one fresh policy, no reloads
    trainer_side = trained(5, steps=30)
    trainer_side.save(tmp_path)
    v1 = cache.get(AGENT)
    assert v1.version == 1 and cache.get(AGENT) is v1  # loaded once, then served from memory
    trainer_side.save(tmp_path)
    assert cache.get(AGENT).version == 2  # the next bid sees the new version
    (tmp_path / f"{AGENT}_policy.npz").write_bytes(b"truncated")
    assert cache.get(AGENT).version == 2  # a corrupt file keeps the last good policy

    explorer = AgentLearningConfig.get_profile("explorer")
    strategy = RLBiddingStrategy(AGENT, explorer, cache, warmup=0)
    for fit in range(0, 101, 5):
        ctx = BidContext(
            task_id=1,
            reward_wei=10**18,
            tags=["research"],
            fit_score=fit,
            capability_weights={"research": 70},
            reputation=50,
        )
        decision = strategy.decide(ctx)
        assert not decision.bid or policy.MIN_BID_FRACTION * 10**18 <= decision.amount_wei <= 10**18
        if fit < explorer.min_fit_to_bid:  # the profile's risk bar holds whatever the model says
            assert not decision.bid and "bar" in decision.reason


def test_exploration_follows_uncertainty_and_the_profile(tmp_path: Path) -> None:
    """UCB over bid levels: an untried level is tried before a slightly better known one; the bonus fades as
    a level's evidence grows; a profile that explores more weighs it more; torch and NumPy agree."""
    from agentfleet.bidding.policy_net import PolicyCache
    from agentfleet.bidding.state import exploration_bonus, ucb_scores
    from agentfleet.profiles import AgentLearningConfig

    q = [0.0, 0.5, 0.45]
    assert max(range(3), key=lambda a: ucb_scores(q, [100, 100, 0], 0.1)[a]) == 2  # untried: tried first
    assert max(range(3), key=lambda a: ucb_scores(q, [100, 100, 5000], 0.1)[a]) == 1  # known worse: left
    bonuses = [ucb_scores([0.0], [n], 1.0)[0] for n in (1, 10, 100, 1000)]
    assert bonuses == sorted(bonuses, reverse=True)
    explorer, conservative = (AgentLearningConfig.get_profile(n).exploration_rate for n in ("explorer", "conservative"))
    assert exploration_bonus(explorer) > exploration_bonus(conservative) > 0

    model = trained(9, steps=100)
    model.save(tmp_path)
    policy = PolicyCache(tmp_path).get(AGENT)
    assert policy.counts.sum() == model.memory.size and (policy.counts == model.memory.counts.numpy()).all()
    rng = random.Random(4)
    for _ in range(200):
        state = [rng.random() for _ in range(STATE_SIZE)]
        model.exploration_rate = 0.3
        assert policy.act(state, 0.3) == model.act(state)


def test_the_numpy_policy_equals_the_torch_model(tmp_path: Path) -> None:
    from agentfleet.bidding.policy_net import FRESH_POLICY, PolicyCache, PolicyNet, policy_path

    fresh = PolicyNet.load(FRESH_POLICY)  # what a worker bids with before the trainer wrote anything
    for shipped, exported in zip(fresh.weights, ReinforcementLearning(AGENT).policy().weights, strict=True):
        assert (shipped == exported).all(), "fresh_policy.npz no longer matches a new model: regenerate it"
    model = trained(7, steps=200)
    model.save(tmp_path)  # writes the model and, after it, the workers' policy
    loaded = PolicyCache(tmp_path).get(AGENT)
    assert policy_path(tmp_path, AGENT).exists() and loaded.version == model.version == 1
    assert loaded.decisions == model.memory.size
    rng = random.Random(3)
    for _ in range(500):
        state = [rng.random() for _ in range(STATE_SIZE)]
        with torch.no_grad():
            expected = model.q(torch.tensor([state]))[0].numpy()
        assert abs(loaded.q_values(state) - expected).max() < 1e-5
        assert loaded.best(state) == model.act(state, explore=False)


def test_a_worker_bidding_with_rl_never_imports_torch(tmp_path: Path) -> None:
    trained(5, steps=50).save(tmp_path)
    script = textwrap.dedent(
        f"""
        import sys
        from agentfleet.bidding.choice import choose_strategy
        from agentfleet.bidding.context import BidContext
        from agentfleet.bidding.policy_net import PolicyCache
        from agentfleet.profiles import AgentLearningConfig
        import workers.tasks  # the agent worker's module, with everything it imports
        cache = PolicyCache({str(tmp_path)!r})
        explorer = AgentLearningConfig.get_profile("explorer")
        strategy = choose_strategy("rl", {AGENT!r}, explorer, lambda: cache, warmup=0)
        bids = 0
        for i in range(100):
            ctx = BidContext(task_id=i + 1, reward_wei=10**18, tags=["research"], fit_score=60 + i % 40,
                             capability_weights={{"research": 70}}, reputation=50)
            bids += strategy.decide(ctx).bid
        # VmRSS now (ru_maxrss would include the forking pytest process's peak: Linux keeps it across exec)
        rss_mb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) / 1024
        print("torch" in sys.modules, bids, cache.get({AGENT!r}).version, round(rss_mb))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    imported, bids, version, rss_mb = out.stdout.split()
    assert imported == "False" and int(bids) > 0 and version == "1"
    assert int(rss_mb) < 150, f"a worker deciding with RL holds {rss_mb} MB"


def test_the_profile_bids_until_the_model_warmed_up_and_reputation_raises_the_bar(tmp_path: Path) -> None:
    from agentfleet.bidding.adaptive import AdaptiveBiddingStrategy
    from agentfleet.bidding.context import BidContext
    from agentfleet.bidding.market import MarketFeatures
    from agentfleet.bidding.policy_net import PolicyCache
    from agentfleet.bidding.rl import RLBiddingStrategy, fit_bar
    from agentfleet.profiles import AgentLearningConfig

    balanced = AgentLearningConfig.get_profile("balanced")
    trained(3, steps=40).save(tmp_path)  # 40 transitions learned
    ctx = BidContext(
        task_id=1, reward_wei=10**18, tags=["research"], fit_score=80, capability_weights={}, reputation=60
    )
    warming = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=41).decide(ctx)
    assert warming.reason.startswith("RL warming up (40/41")
    assert warming.amount_wei == AdaptiveBiddingStrategy(balanced).decide(ctx).amount_wei
    warm = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=40).decide(ctx)
    assert warm.reason.startswith("RL v1")
    assert [fit_bar(balanced, r) for r in (100, 90, 89, 50, 40, 20, 0)] == [25, 25, 40, 40, 58, 74, 90]
    low = ctx.model_copy(update={"reputation": 10, "fit_score": 80})
    refused = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=0).decide(low)
    assert not refused.bid and "reputation 10" in refused.reason
    # The raised bar stops at the agent's strongest tag (never under the pass mark): a way back stays open.
    assert [fit_bar(balanced, r, strongest=68) for r in (100, 40, 20, 0)] == [25, 58, 68, 68]
    assert fit_bar(balanced, 0, strongest=45) == 50
    # Near the cap the bar opens (a failure there costs points a strong pass or two win back): the model decides.
    capped = ctx.model_copy(update={"reputation": 100, "fit_score": 30})
    assert (
        RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=0).decide(capped).reason.startswith("RL v1: ")
    )
    below = capped.model_copy(update={"reputation": 89})
    assert (
        "below the bar 40" in RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=0).decide(below).reason
    )
    best = low.model_copy(update={"capability_weights": {"research": 80, "coding": 30}})
    decided = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=0).decide(best)
    assert decided.reason.startswith("RL v1: ")  # the model decides, the bar let it (bar 80 at reputation 10)
    assert "below the bar" not in decided.reason
    # A fit frozen under the bar by a few low scores is raised to the mean of the agent's own recent scores.
    frozen = below.model_copy(update={"fit_score": 35})
    strategy = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=0)
    assert "fit 35 below the bar 40" in strategy.decide(frozen).reason
    record = MarketFeatures(scores=[45.0, 41.0, 50.0, 47.0, 42.0])  # mean 45
    assert strategy.decide(frozen.model_copy(update={"market": record})).reason.startswith("RL v1: ")
    warming_on_record = RLBiddingStrategy(AGENT, balanced, PolicyCache(tmp_path), warmup=41)
    assert warming_on_record.decide(frozen.model_copy(update={"market": record})).bid  # the warm-up sees it too
    assert not warming_on_record.decide(frozen).bid


def test_half_of_every_batch_comes_from_the_newest_transitions() -> None:
    from agentfleet.bidding.dqn import RECENT, ReplayMemory

    memory = ReplayMemory(capacity=2000)
    for n in range(2600):  # wrapped: the newest transitions sit just before the cursor
        memory.push([0.0] * STATE_SIZE, n % ACTIONS, float(n), [0.0] * STATE_SIZE, True)
    rewards = memory.sample(64, torch.Generator().manual_seed(3))[2]
    newest = rewards[32:]
    assert ((newest >= 2600 - RECENT) & (newest < 2600)).all()  # the recent half: the newest RECENT only
    assert rewards[:32].min() < 2600 - RECENT  # the rest from the whole memory (600..2599)
    small = ReplayMemory(capacity=2000)
    for n in range(RECENT):  # no more than RECENT held: every draw is uniform
        small.push([0.0] * STATE_SIZE, 0, float(n), [0.0] * STATE_SIZE, True)
    assert small.sample(64, torch.Generator().manual_seed(3))[2].max() < RECENT
