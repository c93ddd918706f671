"""scripts/learning_sweep.py, the experiment tool for the learner: its rows are the simulator's own sweep rows,
whether the fixed profiles ran or came from its cache, and a change to what they depend on misses the cache."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from agentfleet.profiles import AgentLearningConfig
from trainer.simulator import MARKETS, sweep_row

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("learning_sweep", ROOT / "scripts" / "learning_sweep.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_match_the_simulators_sweep_with_the_fixed_profiles_cached(tmp_path: Path) -> None:
    script = _script()
    first = script.run_pair("sparse", 3, 400, str(tmp_path))
    cached = list(tmp_path.glob("*.json"))
    assert len(cached) == 1 and set(json.loads(cached[0].read_text())) == set(AgentLearningConfig.PROFILES)
    again = script.run_pair("sparse", 3, 400, str(tmp_path))  # the fixed profiles from the cache this time
    reference = sweep_row(3, 400, MARKETS["sparse"])
    for key in ("rl_first", "rl_last", "best_fixed", "best_last", "best_first", "offered_first", "ceiling_last"):
        assert first[key] == again[key] == reference[key], key
    key = script.fixed_key("sparse", 3, 400)
    assert key != script.fixed_key("sparse", 4, 400)
    for name in script.FIXED_SOURCES:  # a copy of the sources: editing one of them misses the cache
        (tmp_path / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / name).write_bytes((ROOT / name).read_bytes())
    script.ROOT = tmp_path / "src"
    assert script.fixed_key("sparse", 3, 400) == key
    limits = tmp_path / "src" / "agentfleet" / "protocol" / "limits.py"
    limits.write_text(limits.read_text() + "\n# edited\n")
    assert script.fixed_key("sparse", 3, 400) != key
    assert script.fixed_key("sparse", 3, 400, ROOT) == key  # --fixed-from an unedited checkout: the cache hits


def test_the_command_reports_per_shape_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    run = [sys.executable, str(ROOT / "scripts" / "learning_sweep.py"), "--tasks", "300", "--cache", str(tmp_path)]
    done = subprocess.run(
        [*run, "--markets", "sparse", "--seeds", "1,2", "--jobs", "1", "--out", str(tmp_path / "rows.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "sparse     public" in done.stdout and "of 2" in done.stdout
    assert [r["seed"] for r in json.loads((tmp_path / "rows.json").read_text())] == [1, 2]
    bad = subprocess.run([*run, "--markets", "nowhere"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown market 'nowhere'" in bad.stderr


def test_a_run_is_compared_with_itself_in_the_earlier_rows(tmp_path: Path) -> None:
    def row(seed: int, first: float, last: float) -> dict[str, object]:
        return {"market": "sparse", "seed": seed, "rl_first": first, "rl_last": last, "best_last": 100.0}

    before = [row(4, 300, 270), row(2, 270, 290), row(6, 200, 200)]
    now = [row(4, 300, 330), row(2, 290, 200), row(6, 200, 200)]
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "now.json").write_text(json.dumps(now))
    command = [sys.executable, str(ROOT / "scripts" / "learning_sweep.py"), "--rows", str(tmp_path / "now.json")]
    done = subprocess.run(
        [*command, "--against", str(tmp_path / "before.json")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "behind: sparse       2 last/first 0.69 public" in out and "behind their first 500: 1 of 3" in out
    assert "before: 1 of 3 behind (1 public): sparse 4 0.90x" in out
    assert "rl_last now / before: 0.9446 (1 runs up, 1 down)" in out  # (330/270 x 200/290 x 1) ** (1/3)
    assert "lost most: sparse 2 0.69x, sparse 6 1.00x, sparse 4 1.22x" in out
