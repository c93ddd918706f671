"""The README's main command and the CLI's handling of bad arguments, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from agentfleet.protocol import routing
from testkit.chain import clean_env, fleet_env
from testkit.llm import completion
from testkit.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "shell.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)


@pytest.mark.parametrize("chain", ["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def test_walkthrough_walks_one_task_to_payment(chain: str) -> None:
    result = run("walkthrough", "--chain", chain)
    assert result.returncode == 0, result.stderr
    for step in ("deployed 7 contracts", "cfp:", "propose:", "accept:", "inform-result:", "inform-done:", "paid:"):
        assert step in result.stdout
    assert "offline" in result.stdout  # no LLM was called, and the output says so


def test_bad_option_gets_a_clear_error() -> None:
    result = run("walkthrough", "--chain", "mainnet")
    assert result.returncode == 2
    assert "--chain" in result.stderr and "inprocess" in result.stderr


def test_accounts_never_print_keys_or_mnemonic() -> None:
    env = {**os.environ, "AGENTFLEET_MNEMONIC": "test test test test test test test test test test test junk"}
    result = run("accounts", "--count", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" in result.stdout  # agent 0 = HD index 2
    assert "junk" not in result.stdout
    result = run("settings", env=env)
    assert "junk" not in result.stdout and "**********" in result.stdout


def test_invalid_setting_is_reported_by_name() -> None:
    result = run("settings", env={**os.environ, "AGENTFLEET_CONFIRMATIONS": "many"})
    assert result.returncode == 2
    assert "invalid setting AGENTFLEET_CONFIRMATIONS" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.anvil
def test_demo_runs_the_whole_fleet_and_leaves_nothing_behind(tmp_path: Path, artifacts_out: Path) -> None:
    started: set[int] = set()  # every process the demos started, seen while they ran

    def demo(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            [*CLI, "demo", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        with ThreadPoolExecutor(1) as pool:
            output = pool.submit(proc.communicate, timeout=300)
            while not output.done():
                started.update(descendants(proc.pid))
                time.sleep(0.2)
            stdout, stderr = output.result()
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    env = clean_env()
    result = demo("--tasks", "8", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "provider: offline" in result.stdout
    rows = [
        line for line in result.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip().isdigit()
    ]
    assert len(rows) == 8
    assert all(any(s in row for s in ("completed", "failed", "expired", "cancelled")) for row in rows)
    assert [row.split("│")[2].strip() for row in rows] == ["open", "sealed"] * 4  # the default mixes the auctions
    for mode in ("open", "sealed"):  # and each mode alone
        alone = demo("--tasks", "2", "--mode", mode, "--out", str(tmp_path / mode))
        assert alone.returncode == 0, alone.stderr[-3000:]
        table = [line.split("│") for line in alone.stdout.splitlines() if line.startswith("│")]
        assert [cells[2].strip() for cells in table if cells[1].strip().isdigit()] == [mode, mode]
        assert all(cells[4].strip() == "completed" for cells in table if cells[1].strip().isdigit())
    png = tmp_path / "learning-curves.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    (artifacts_out / "demo-learning-curves.png").write_bytes(png.read_bytes())
    assert "INFO" not in result.stdout + result.stderr and "Warning" not in result.stderr  # the console stays clean
    assert routing.CONSIDER in (tmp_path / "demo.log").read_text()  # the fleet's logs went to the file
    assert len(started) >= 3 and not alive(started)  # redis-server, anvil, workers: none left running


def test_llm_check_reports_each_operation_offline() -> None:
    env = clean_env()
    result = run("llm-check", env=env)
    assert result.returncode == 0, result.stderr
    for line in (
        "provider: offline",
        "evaluate_task_fit:",
        "calculate_bid_amount:",
        "execute_task:",
        "evaluate_task_result:",
    ):
        assert line in result.stdout


@pytest.mark.anvil
def test_tasks_lists_and_filters_open_tasks(tmp_path: Path) -> None:
    from testkit.chain import create_task, deployed_market

    with deployed_market("anvil", tmp_path) as s:
        create_task(s, tags=["research"])
        create_task(s, tags=["coding"], reward=3 * 10**18)
        env = fleet_env(s)
        coding = run("tasks", "--tag", "coding", env=env)
        rich = run("tasks", "--min-reward", "2", env=env)
    assert coding.returncode == 0, coding.stderr
    assert "coding" in coding.stdout and "research" not in coding.stdout
    assert "3.000" in rich.stdout and "1.000" not in rich.stdout


def test_report_prints_the_learning_report_or_a_clear_error(tmp_path: Path) -> None:
    from trainer.integration import LearningIntegration

    agent = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    learning = LearningIntegration(agent, {"research": 60}, models_dir=tmp_path)
    learning.process_task_result(1, "research", 90, 1.5, ["research"])
    learning.save_state()
    env = {**os.environ, "AGENTFLEET_MODELS_DIR": str(tmp_path)}
    result = run("report", agent, env=env)
    assert result.returncode == 0 and '"tasks_processed": 1' in result.stdout
    missing = run("report", "0x" + "ab" * 20, env=env)
    assert missing.returncode == 1 and "cannot load learning state" in missing.stdout


def descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split("\n")[1:]
    children: dict[int, list[int]] = {}
    for line in filter(None, out):
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,stat"], capture_output=True, text=True).stdout.split("\n")[1:]
    return {int(p) for p, stat in (line.split() for line in out if line.strip()) if int(p) in pids and "Z" not in stat}


@pytest.mark.anvil
@pytest.mark.parametrize(("target", "into_run"), [("group", 4.0), ("process", 4.0), ("group", 0.0)])
def test_demo_ctrl_c_exits_0_and_leaves_no_process(tmp_path: Path, target: str, into_run: float) -> None:
    """A terminal's Ctrl-C signals the whole foreground group; `kill -INT` only the demo itself. Into the run,
    or at once (while contracts deploy and the worker starts: it once failed joining a listener never started)."""
    env = clean_env()
    args = [*CLI, "demo", "--tasks", "80", "--out", str(tmp_path)]  # well over 4 s of work
    demo = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    started: set[int] = set()

    def services_up() -> bool:  # redis-server and anvil are up: the fleet is being built or running
        assert demo.poll() is None, demo.stdout.read() if demo.stdout else ""
        started.update(descendants(demo.pid))
        return len(started) >= 2

    wait_until(services_up, 60, "the demo did not start its services", interval=0.2)
    time.sleep(into_run)  # 4 s: into the run, contracts deployed, worker and listener threads busy
    started |= descendants(demo.pid)
    if target == "group":
        os.killpg(demo.pid, signal.SIGINT)
    else:
        demo.send_signal(signal.SIGINT)
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, out[-3000:]
    assert "interrupted" in out
    assert alive(started) == set(), "processes left behind after Ctrl-C"


@pytest.mark.parametrize("reported", [True, False])
def test_demo_ctrl_c_lost_inside_a_finalizer_still_interrupts(monkeypatch: pytest.MonkeyPatch, reported: bool) -> None:
    """Python drops a KeyboardInterrupt raised while a ``__del__`` or a GC callback runs ("Exception ignored
    in"): the demo then ran to its end and never said it was interrupted (seen once in CI). The demo raises it
    again at its next progress report, or when run_demo returns."""
    from typer.testing import CliRunner

    import shell.demo
    from shell.cli import app

    calls: list[str] = []

    def run_demo(*, on_progress: object, **_kwargs: object) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the handler runs here
        except KeyboardInterrupt:
            calls.append("swallowed")  # what a finalizer does with it
        if reported:
            on_progress({"completed": 1})  # type: ignore[operator]
            calls.append("went on")

    monkeypatch.setattr(shell.demo, "run_demo", run_demo)
    result = CliRunner().invoke(app, ["demo", "--tasks", "1"])
    assert result.exit_code == 0, result.output
    assert "interrupted" in result.output and calls == ["swallowed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_readme_seed_table_names_commands_that_exist_with_those_options() -> None:
    """Each `agentfleet ...` in the README's seed table is a real (sub)command accepting the options shown;
    the commands themselves run in test_stack (up, create-tasks), test_messaging, test_cli and test_trainer."""
    import re
    import shlex

    readme = (ROOT / "README.md").read_text()
    table = readme.split("The seed's commands and ours:", 1)[1].lstrip().split("\n\n", 1)[0]
    snippets = [s for s in re.findall(r"`([^`]+)`", table) if "agentfleet " in s]
    assert len(snippets) >= 7
    for snippet in snippets:
        words = shlex.split(snippet[snippet.index("agentfleet ") :])[1:]
        path = []
        for word in words:
            if word.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            path.append(word)
        shown = run(*path, "--help")
        assert shown.returncode == 0, (snippet, shown.stderr)
        for option in (w for w in words if w.startswith("--")):
            assert option in shown.stdout, f"{snippet}: {option} is not an option of agentfleet {' '.join(path)}"


def test_llm_check_prints_hostile_answers_as_plain_text(httpserver: HTTPServer) -> None:
    """What a real OpenAI-compatible server answers is shown as text: rich markup in it (even malformed,
    which would make rich raise) neither styles the terminal nor crashes the command."""
    hostile = "[/] [bold red]trust me[/bold red] [link=http://evil]x[/link]"
    body = {"score": 70, "reasoning": hostile, "fraction": 0.5, "content": hostile, "feedback": hostile}
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(completion(body))
    env = clean_env() | {"OPENAI_API_KEY": "sk-local-test-0000", "OPENAI_BASE_URL": httpserver.url_for("/v1")}
    result = run("llm-check", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("[bold red]trust me[/bold red]") == 4  # all four answers, verbatim
    assert "sk-local-test-0000" not in result.stdout + result.stderr
