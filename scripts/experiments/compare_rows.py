"""Two sweeps' rows side by side (``learning_sweep.py --out``): the runs behind their first 500 in each, the
last 500 of the new over the old run by run (geometric mean, runs up and down), the first 500 likewise, the
worst runs, and per shape the geometric mean of learner / best fixed on the public ten and on the other seeds.

Why: a change to the learner moves which runs fall behind more than how many (docs/learning-experiments.md,
twelfth session); judging it needs every run compared with itself, on one machine.

Run: ``.venv/bin/python scripts/experiments/compare_rows.py old.json new.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learning_sweep import PUBLIC

from trainer.simulator import geometric_mean_ratio

Rows = dict[tuple[str, int], dict[str, Any]]


def load(path: str) -> Rows:
    return {(r["market"], r["seed"]): r for r in json.loads(Path(path).read_text())}


def geomean(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main() -> None:
    old, new = load(sys.argv[1]), load(sys.argv[2])
    keys = sorted(set(old) & set(new))
    for name, rows in (("old", old), ("new", new)):
        behind = [k for k in keys if rows[k]["rl_last"] < rows[k]["rl_first"]]
        runs = ", ".join(
            f"{m} {s} {rows[(m, s)]['rl_last'] / max(rows[(m, s)]['rl_first'], 1e-9):.2f}x" for m, s in behind
        )
        print(f"{name}: {len(behind)} behind ({sum(s in PUBLIC for _, s in behind)} public): {runs}")
    for field in ("rl_last", "rl_first"):
        ratios = [new[k][field] / old[k][field] for k in keys if old[k][field] > 0 and new[k][field] > 0]
        up, down = sum(r > 1.0001 for r in ratios), sum(r < 0.9999 for r in ratios)
        print(f"{field} new / old: {geomean(ratios):.4f} ({up} up, {down} down)")
    worst = sorted(keys, key=lambda k: new[k]["rl_last"] / max(old[k]["rl_last"], 1e-9))[:6]
    print(
        "worst:",
        ", ".join(f"{m} {s} {new[(m, s)]['rl_last'] / max(old[(m, s)]['rl_last'], 1e-9):.2f}x" for m, s in worst),
    )
    for market in dict.fromkeys(m for m, _ in keys):
        cells = []
        for rows in (old, new):
            public = [rows[k] for k in keys if k[0] == market and k[1] in PUBLIC]
            others = [rows[k] for k in keys if k[0] == market and k[1] not in PUBLIC]
            cells.append(f"{geometric_mean_ratio(public) or 0:.2f} / {geometric_mean_ratio(others) or 0:.2f}")
        print(f"{market:<10} public / others: old {cells[0]}  new {cells[1]}")


if __name__ == "__main__":
    main()
