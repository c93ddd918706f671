"""The market simulator: the learning agent improves, runs are reproducible, the CLI writes its plot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainer.simulator import compare, summary

ROOT = Path(__file__).resolve().parent.parent


def test_learning_agent_improves_and_beats_every_fixed_profile_and_runs_reproduce() -> None:
    """Seed 11, 3000 tasks (the `agentfleet simulate` default; README "Learning" has the other seeds)."""
    results = compare(seed=11, tasks=3000)
    rows = {row["strategy"]: row for row in summary(results)}
    assert set(rows) == {"rl", "balanced", "aggressive", "conservative", "explorer", "specialist", "workload_sensitive"}
    rl = rows.pop("rl")
    assert rl["last"] > 1.2 * rl["first"]  # it learned: its last 500 tasks beat its first 500
    best = max(rows.values(), key=lambda row: row["last"])
    assert rl["last"] > 1.1 * best["last"], (rl, best)  # and out-earns the best fixed profile of the same skill
    assert compare(seed=11, tasks=300)["rl"].profit == compare(seed=11, tasks=300)["rl"].profit  # same seed, same run


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
    assert "workload_sensitive" in result.stdout and "rl" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
