"""The learner over many market shapes and seeds, fast enough to try a change to it: every (shape, seed) pair in
one process pool, the fixed profiles' runs cached.

Why: ``agentfleet simulate --seeds`` runs eight strategies per market (the learner, bid shading, six fixed
profiles). Only the learner changes when the learner is changed, so a run of the fixed profiles is kept in
``--cache`` under a key made of the market shape, the seed, the task count and the source of every module they
depend on (the simulator, the fixed strategy, the profiles, the market book, the contract rules): edit any of
those and the cache misses. Pairs run in ``--jobs`` spawned processes, slowest shapes first, so two cores stay
busy to the end (``simulate --jobs`` parallelises one shape's seeds at a time).

Run: ``.venv/bin/python scripts/learning_sweep.py [--markets all] [--seeds 1,2,...] [--jobs 2] [--out rows.json]``;
the default seeds are the public ten and 17 others (docs/learning-experiments.md). Prints one line per run behind
its first 500 tasks and, per shape, the geometric mean of learner / best fixed and the runs kept; ``--out`` keeps
every row (the ``sweep`` row's fields) for comparing two versions of the learner with ``--against`` (per shape,
and run by run; ``--rows earlier.json --against older.json`` compares two saved runs without running). A change
that only the learner sees (e.g. what the market book keeps) still edits a file the cache key hashes: run it in
another checkout (``git worktree add``) with ``--fixed-from /path/to/unchanged/checkout --cache
/path/to/unchanged/checkout/.cache/fixed-runs`` to reuse the fixed runs (all 243 runs in 19 minutes instead
of 23 cold, 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PUBLIC = (1, 2, 3, 4, 5, 7, 11, 21, 42, 99)
OTHERS = (6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22, 23, 24, 25)
FIXED_SOURCES = (  # what a fixed profile's run depends on: the cache key hashes them
    "trainer/simulator.py",
    "agentfleet/bidding/adaptive.py",
    "agentfleet/bidding/costs.py",
    "agentfleet/bidding/market.py",
    "agentfleet/bidding/record.py",
    "agentfleet/bidding/context.py",
    "agentfleet/bidding/reward.py",
    "agentfleet/profiles.py",
    "agentfleet/policy.py",
    "agentfleet/protocol/limits.py",
)
SLOW_FIRST = ("crowded", "strong", "default", "whales", "sealed", "generalist", "specialist", "weak", "sparse")


def experiment_learner(learner: str) -> Callable[..., Any]:
    """An experiment's learner, ``path/to/module.py[:function]`` (default ``rl_focal``), called as the
    simulator's ``rl_focal`` is; the module is loaded (and may patch the simulator) when this is called."""
    import importlib.util

    file, _, name = learner.partition(":")
    spec = importlib.util.spec_from_file_location("experiment", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name or "rl_focal")  # type: ignore[no-any-return]


def fixed_key(market: str, seed: int, tasks: int, sources: Path | None = None) -> str:
    """The cache key of the fixed profiles' runs: the market, seed, task count and the ``FIXED_SOURCES`` of the
    checkout at ``sources`` (default: this one)."""
    digest = hashlib.sha256()
    for name in FIXED_SOURCES:
        digest.update(((sources or ROOT) / name).read_bytes())
    return f"{market}-{seed}-{tasks}-{digest.hexdigest()[:16]}"


def fixed_runs(market: str, seed: int, tasks: int) -> dict[str, list[float]]:
    """Each fixed profile's profit per task (ETH) in this market."""
    from agentfleet.profiles import AgentLearningConfig
    from trainer.simulator import MARKETS, fixed_focal, run_market

    return {
        profile: run_market(fixed_focal(profile), seed=seed, tasks=tasks, market=MARKETS[market])[0].profit
        for profile in AgentLearningConfig.PROFILES
    }


def run_pair(market: str, seed: int, tasks: int, cache: str, learner: str = "", sources: str = "") -> dict[str, Any]:
    """One ``sweep`` row with the learner only run; the fixed profiles from the cache (or run and cached), keyed
    on the sources of the checkout at ``sources`` (default: this one)."""
    import torch

    from trainer.simulator import MARKETS, rl_focal, row_of, run_market

    torch.set_num_threads(1)
    path = Path(cache) / f"{fixed_key(market, seed, tasks, Path(sources) if sources else None)}.json"
    if path.exists():
        fixed = json.loads(path.read_text())
    else:
        fixed = fixed_runs(market, seed, tasks)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fixed))
    started = time.perf_counter()
    decide, learn = (experiment_learner(learner) if learner else rl_focal)(seed)
    learning = run_market(decide, seed=seed, tasks=tasks, learn=learn, market=MARKETS[market])[0]
    return {**row_of(seed, market, learning, fixed), "seconds": time.perf_counter() - started}


def report(rows: list[dict[str, Any]], against: list[dict[str, Any]] | None = None) -> None:
    from trainer.simulator import geometric_mean_ratio, why_behind

    before = {(r["market"], r["seed"]): r for r in against or []}
    behind = [r for r in rows if r["rl_last"] < r["rl_first"]]
    for r in sorted(behind, key=lambda r: (r["market"], r["seed"])):
        seen = "public" if r["seed"] in PUBLIC else ""
        print(
            f"behind: {r['market']:<10} {r['seed']:>3} last/first {r['rl_last'] / max(r['rl_first'], 1e-9):.2f} "
            f"{seen}\n    {why_behind(r) if 'offered_first' in r else ''}"
        )
    for market in dict.fromkeys(r["market"] for r in rows):
        mine = [r for r in rows if r["market"] == market]
        public = [r for r in mine if r["seed"] in PUBLIC]
        others = [r for r in mine if r["seed"] not in PUBLIC]
        line = (
            f"{market:<10} public {_ratio(geometric_mean_ratio(public))} kept "
            f"{sum(r['rl_last'] >= r['rl_first'] for r in public)}/{len(public)}  others "
            f"{_ratio(geometric_mean_ratio(others))} kept {sum(r['rl_last'] >= r['rl_first'] for r in others)}/"
            f"{len(others)}"
        )
        old = [before[(r["market"], r["seed"])] for r in mine if (r["market"], r["seed"]) in before]
        if old:
            kept = sum(r["rl_last"] >= r["rl_first"] for r in old)
            line += f"  (before: all {_ratio(geometric_mean_ratio(old))}, kept {kept})"
        print(line)
    print(f"behind their first 500: {len(behind)} of {len(rows)}")
    if before:
        compare(rows, before)


def compare(rows: list[dict[str, Any]], before: dict[tuple[str, int], dict[str, Any]]) -> None:
    """Each run against itself in the earlier rows: the runs behind before, the last and first 500 now / before
    (geometric mean, runs up and down) and the runs that lost most. Why run by run: a change to the learner
    moves which runs fall behind more than how many (docs/learning-experiments.md, twelfth session)."""
    pairs = [(r, before[(r["market"], r["seed"])]) for r in rows if (r["market"], r["seed"]) in before]
    old_behind = [o for _, o in pairs if o["rl_last"] < o["rl_first"]]
    print(
        f"before: {len(old_behind)} of {len(pairs)} behind ({sum(o['seed'] in PUBLIC for o in old_behind)} public): "
        + ", ".join(f"{o['market']} {o['seed']} {o['rl_last'] / max(o['rl_first'], 1e-9):.2f}x" for o in old_behind)
    )
    for key in ("rl_last", "rl_first"):
        ratios = [r[key] / o[key] for r, o in pairs if r[key] > 0 and o[key] > 0]
        if ratios:
            mean = statistics.geometric_mean(ratios)
            up, down = sum(x > 1.0001 for x in ratios), sum(x < 0.9999 for x in ratios)
            print(f"{key} now / before: {mean:.4f} ({up} runs up, {down} down)")
    worst = sorted(pairs, key=lambda p: p[0]["rl_last"] / max(p[1]["rl_last"], 1e-9))[:6]
    print(
        "lost most: "
        + ", ".join(f"{r['market']} {r['seed']} {r['rl_last'] / max(o['rl_last'], 1e-9):.2f}x" for r, o in worst)
    )


def _ratio(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.2f}x"


def main() -> None:
    from trainer.simulator import MARKETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markets", default="all", help="comma-separated shapes, or all")
    parser.add_argument("--seeds", default=",".join(map(str, PUBLIC + OTHERS)))
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "fixed-runs"))
    parser.add_argument("--out", default="", help="JSON file for the rows")
    parser.add_argument("--learner", default="", help="an experiment's rl_focal: path/to/module.py:function")
    parser.add_argument("--against", default="", help="rows of an earlier run (--out) to compare with")
    parser.add_argument("--rows", default="", help="report these rows of an earlier run (--out) instead of running")
    parser.add_argument(
        "--fixed-from",
        default="",
        help="another checkout whose fixed-profile sources key the cache: a change to what only the learner sees "
        "(the market book's features) reuses that checkout's cached fixed runs (pass its --cache too)",
    )
    args = parser.parse_args()
    markets = list(MARKETS) if args.markets == "all" else args.markets.split(",")
    unknown = [m for m in markets if m not in MARKETS]
    if unknown:
        parser.error(f"unknown market {unknown[0]!r}; choose from {', '.join(MARKETS)}")
    against = json.loads(Path(args.against).read_text()) if args.against else None
    if args.rows:
        report(json.loads(Path(args.rows).read_text()), against)
        return
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    pairs = sorted(
        ((m, s) for m in markets for s in seeds), key=lambda p: SLOW_FIRST.index(p[0]) if p[0] in SLOW_FIRST else 0
    )
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_pair, m, s, args.tasks, args.cache, args.learner, args.fixed_from) for m, s in pairs]
        for done, future in enumerate(as_completed(futures), 1):
            rows.append(future.result())
            print(f"\r{done}/{len(pairs)} runs, {time.perf_counter() - started:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    rows.sort(key=lambda r: (markets.index(r["market"]), seeds.index(r["seed"])))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))
    report(rows, against)


if __name__ == "__main__":
    main()
