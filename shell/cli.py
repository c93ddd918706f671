"""The ``agentfleet`` command line (typer + rich)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentfleet.settings import Settings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from agentfleet.chain.session import ChainSession
    from shell.demo import TaskRow

app = typer.Typer(
    help="agentfleet: LLM agents competing for on-chain tasks, as a Celery worker fleet.", no_args_is_help=True
)
console = Console(width=None if sys.stdout.isatty() else 160)


def load_settings() -> Settings:
    """Settings, or a one-line error naming each bad variable (exit code 2) instead of a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "AGENTFLEET_" + "_".join(str(p) for p in error["loc"]).upper()
            console.print(f"[red]invalid setting {name}[/red]: {escape(str(error['msg']))}")
        raise typer.Exit(code=2) from None


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def demo(
    tasks: Annotated[int, typer.Option(min=1, max=200, help="Tasks to take through their whole life.")] = 24,
    out: Annotated[Path, typer.Option(help="Folder for the plot and the models.")] = Path("demo-output"),
    timeout: Annotated[
        float, typer.Option(min=5, help="Seconds the whole demo may take; then it stops and shows where the tasks are.")
    ] = 600,
) -> None:
    """The main job on an embedded default: redis, anvil, listener, workers, trainer and keeper in one go."""
    from rich.progress import BarColumn, Progress, TextColumn

    from shell.demo import DemoFailed, run_demo

    settings = load_settings()
    console.rule("[bold]agentfleet demo[/bold]")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} final"),
        console=console,
    ) as progress:
        bar = progress.add_task("starting", total=tasks)

        def show(counts: dict[str, int]) -> None:
            final = sum(counts.get(k, 0) for k in ("completed", "failed", "cancelled", "expired"))
            text = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
            progress.update(bar, completed=final, description=text)

        try:
            result = run_demo(tasks=tasks, out_dir=out, on_progress=show, base_settings=settings, timeout=timeout)
        except KeyboardInterrupt:  # run_demo has stopped everything it started on the way out
            progress.stop()
            console.print("interrupted: the demo stopped every process it started (nothing is left running)")
            raise typer.Exit(code=0) from None
        except DemoFailed as failed:  # it has stopped everything too; one sentence and the tasks, no traceback
            progress.stop()
            console.print(Text(f"demo failed: {failed.reason}", style="red"), soft_wrap=True)  # one line
            console.print(_demo_table(failed.rows, failed.provider))
            console.print(f"logs: {failed.log}; every service the demo started has been stopped")
            raise typer.Exit(code=1) from None
    console.print(_demo_table(result.rows, result.provider))
    console.print(f"learning curves: {result.png}")
    console.print(f"models: {result.models_dir}")
    console.print(f"logs: {result.log}")
    console.print(f"done in {result.seconds:.1f} s; every service the demo started has been stopped")


def _demo_table(rows: list[TaskRow], provider: str) -> Table:
    """The demo's task table, the same whether the demo finished or not (then with the states it reached)."""
    table = Table(title=f"{len(rows)} tasks, provider: {provider}")
    for column in ("task", "tags", "status", "winner", "bid (ETH)", "score", "payment (ETH)", "reputation"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r.task_id),
            Text(",".join(r.tags)),
            r.status,
            r.winner,
            f"{r.bid_eth:.3f}",
            "-" if r.score is None else str(r.score),
            f"{r.payment_eth:.3f}",
            r.reputation,
        )
    return table


@app.command()
def walkthrough(
    chain: Annotated[str, typer.Option(help="Embedded chain: 'inprocess' (py-evm) or 'anvil'.")] = "inprocess",
) -> None:
    """One task's whole life, step by step, with no Celery (the protocol in under a minute)."""
    from shell.walkthrough import run_embedded

    if chain not in {"inprocess", "anvil"}:
        raise typer.BadParameter("use 'inprocess' or 'anvil'", param_hint="--chain")
    console.rule("[bold]agentfleet walkthrough[/bold] (offline: no LLM is called)")
    result = run_embedded(chain=chain, say=lambda line: console.print(Text(f"  {line}")))
    table = Table(title="task outcome")
    for column in ("task", "winner", "bid (ETH)", "score", "payment (ETH)", "reputation"):
        table.add_column(column)
    table.add_row(
        str(result.task_id),
        result.winner_name,
        f"{result.price / 1e18:.2f}",
        str(result.score),
        f"{result.payment / 1e18:.2f}",
        f"{result.reputation_before} -> {result.reputation_after}",
    )
    console.print(table)


@app.command()
def deploy(
    fresh: Annotated[bool, typer.Option(help="Deploy anew even if the recorded deployment is live.")] = False,
) -> None:
    """Deploy (or reuse) the contracts on the configured chain and write contract_addresses.json."""
    from agentfleet.chain.deploy import deploy_all
    from agentfleet.chain.session import ChainSession

    settings = load_settings()
    session = ChainSession.open(settings)
    record = deploy_all(session.client, session.deployer, record_path=settings.contract_addresses_path, reuse=not fresh)
    console.print_json(json.dumps(record.model_dump(by_alias=True)))


@app.command()
def listen() -> None:
    """Follow the chain and turn confirmed events into Celery work (same as ``python -m chain_listener``)."""
    from chain_listener.listener import main

    main(load_settings())


@app.command()
def simulate(
    tasks: Annotated[int, typer.Option(min=100, max=100_000, help="Tasks in the market.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the market and the learner.")] = 11,
    out: Annotated[str, typer.Option(help="PNG of the learning curves.")] = "simulation.png",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds: one summary row per market, no plot.")] = "",
) -> None:
    """Market simulator (no chain, no Celery): a learning agent against fixed learning profiles."""
    from rich.progress import Progress

    from trainer.simulator import compare, plot, summary, sweep

    if seeds:
        try:
            chosen = [int(part) for part in seeds.split(",") if part.strip()]
        except ValueError:
            raise typer.BadParameter("use comma-separated integers, e.g. 1,2,3", param_hint="--seeds") from None
        with Progress(console=console) as progress:
            bar = progress.add_task("markets", total=len(chosen))
            rows = sweep(chosen, tasks, progress=lambda: progress.advance(bar))
        table = Table("seed", "learner, first 500", "learner, last 500", "best fixed profile", "its last 500")
        for r in rows:
            table.add_row(
                str(r["seed"]),
                f"{r['rl_first']:.0f}",
                f"{r['rl_last']:.0f}",
                str(r["best_fixed"]),
                f"{r['best_last']:.0f}",
            )
        ahead = sum(r["rl_last"] > r["best_last"] for r in rows)
        totals = {key: f"{sum(r[key] for r in rows):.0f}" for key in ("rl_first", "rl_last", "best_last")}
        table.add_row(
            "all",
            totals["rl_first"],
            totals["rl_last"],
            f"learner ahead on {ahead} of {len(rows)}",
            totals["best_last"],
        )
        console.print(table)
        return
    with Progress(console=console) as progress:
        bar = progress.add_task("learning agent", total=tasks)
        results = compare(seed, tasks, progress=lambda _step: progress.advance(bar))
    table = Table("strategy of the focal agent", "profit, first 500", "profit, last 500", "wins, last 500", "total")
    for row in summary(results):
        table.add_row(
            str(row["strategy"]),
            f"{row['first']:.1f}",
            f"{row['last']:.1f}",
            str(row["last_wins"]),
            f"{row['total']:.1f}",
        )
    console.print(table)
    console.print(f"learning curves: {plot(results, out)}")


@app.command()
def up(
    workers: Annotated[int, typer.Option(min=1, max=32, help="Celery worker processes for the agent queues.")] = 2,
    run_dir: Annotated[Path, typer.Option(help="Logs, deployment record, models, env file.")] = Path("run"),
) -> None:
    """The whole fleet as local processes (anvil, redis, listener, workers, trainer, beat, Flower); Ctrl-C stops all."""
    from shell.stack import run_stack

    run_stack(workers=workers, run_dir=run_dir, settings=load_settings(), say=console.print)


@app.command("create-tasks")
def create_tasks(
    count: Annotated[int, typer.Option(min=1, max=500, help="Tasks to create.")] = 5,
    window: Annotated[int, typer.Option(min=5, help="Seconds until the bidding deadline.")] = 60,
    reward: Annotated[float, typer.Option(min=0.0001, help="Reward per task (ETH), escrowed.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for the tags drawn from the agent types.")] = 1,
) -> None:
    """Create example tasks as the requester (seed: run_agents.py --create-tasks)."""
    import random

    from agentfleet.chain.session import ChainSession
    from shell.fleet import create_example_tasks

    session = ChainSession.open(load_settings())
    for task_id in create_example_tasks(session, random.Random(seed), count, window=window, reward_eth=reward):
        tags = session.tasks.get_task(task_id).tags
        console.print(Text(f"task {task_id}: {', '.join(tags)}, {reward} ETH, bidding closes in {window} s"))


@app.command()
def tasks(
    tag: Annotated[str, typer.Option(help="Only tasks with this tag.")] = "",
    min_reward: Annotated[float, typer.Option(help="Only tasks paying at least this (ETH).")] = 0.0,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Browse open tasks through TaskMarketplace (seed: browsing and filtering tasks)."""
    from web3 import Web3

    from agentfleet.chain.session import ChainSession

    session = ChainSession.open(load_settings())
    ids, _ = session.marketplace.filter_tasks(tag, Web3.to_wei(min_reward, "ether"), 0, limit)
    table = Table("task", "tags", "reward (ETH)", "bids", "closes at")
    for task_id in ids:
        task = session.tasks.get_task(task_id)
        table.add_row(
            str(task_id),
            Text(",".join(task.tags)),
            f"{task.reward / 1e18:.3f}",
            str(session.auction.bid_count(task_id)),
            str(task.biddingDeadline),
        )
    console.print(table)


@app.command("llm-check")
def llm_check() -> None:
    """Ask the configured LLM provider each of its four questions and print the answers (seed:
    test_openai_integration.py)."""
    from agentfleet.llm import TaskView, make_provider

    provider = make_provider(load_settings())
    console.print(f"provider: {provider.name}")
    task = TaskView(1, "Summarise the state of research on decentralised agent coordination.", ("research",), 1.0)
    capabilities = {"research": 90, "writing": 80}
    fit, _ = provider.evaluate_task_fit(capabilities, task)
    console.print(f"evaluate_task_fit: {fit.score:.0f} - {escape(fit.reasoning)}")
    bid, _ = provider.calculate_bid_amount(capabilities, task, 50, 0)
    console.print(f"calculate_bid_amount: {bid.fraction:.2f} of the reward - {escape(bid.reasoning)}")
    result, _ = provider.execute_task("ResearchAgent", capabilities, task)
    console.print(f"execute_task: {escape(result.content[:300])}")
    score, _ = provider.evaluate_task_result(task, result.content)
    console.print(f"evaluate_task_result: {score.score:.0f} - {escape(score.feedback)}")


@app.command()
def report(agent: Annotated[str, typer.Argument(help="Agent address.")]) -> None:
    """The learning report of an agent (from the models volume) with its reputation on chain."""
    from trainer.integration import LearningIntegration

    settings = load_settings()
    try:
        learning = LearningIntegration.load_state(agent, models_dir=settings.models_dir)
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=1) from None
    console.print_json(json.dumps(learning.generate_report()))


@app.command()
def accounts(count: Annotated[int, typer.Option(min=1, max=1000, help="Agents to list.")] = 5) -> None:
    """Print the addresses derived from the mnemonic (never the keys)."""
    from agentfleet.chain.keys import derive_account

    settings = load_settings()
    secret = settings.mnemonic.get_secret_value()
    table = Table("role", "HD index", "address")
    for role, index in (
        ("deployer", settings.deployer_index),
        ("requester", settings.requester_index),
        ("evaluator", settings.evaluator_index),
    ):
        table.add_row(role, str(index), derive_account(secret, index).address)
    for number in range(count):
        index = settings.agent_index_offset + number
        table.add_row(f"agent {number}", str(index), derive_account(secret, index).address)
    console.print(table)


message_app = typer.Typer(help="Agent messages through MessageHub, encrypted to the recipient.", no_args_is_help=True)
app.add_typer(message_app, name="message")


def _agent_account(session: ChainSession, who: str) -> LocalAccount:
    """An agent number (0-based, the fleet's HD keys) -> its account; the CLI signs for it."""
    if not who.isdigit():
        raise typer.BadParameter(f"{who!r}: use the agent's number (0, 1, ...); the CLI signs with its HD key")
    return session.agent(int(who))


@message_app.command("send")
def message_send(
    sender: Annotated[str, typer.Argument(help="Sending agent's number (0-based).")],
    to: Annotated[str, typer.Argument(help="Recipient: agent number or address.")],
    text: Annotated[str, typer.Argument(help="The message (sealed to the recipient's key).")],
    topic: Annotated[str, typer.Option(help="Public topic (not encrypted).")] = "",
    task: Annotated[int, typer.Option(min=0, help="Task the message is about (0: none).")] = 0,
) -> None:
    """Send an encrypted message from one of the fleet's agents (seed: MessageHub send)."""
    from agentfleet.chain.session import ChainSession
    from agentfleet.messaging import MessagingError, send

    session = ChainSession.open(load_settings())
    account = _agent_account(session, sender)
    recipient = _agent_account(session, to).address if to.isdigit() else to
    try:
        message_id = send(session, account, recipient, text, topic=topic, task_id=task)
    except MessagingError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=1) from None
    console.print(f"message {message_id} sent to {recipient} (payload encrypted to its key)")


@message_app.command("read")
def message_read(
    agent: Annotated[str, typer.Argument(help="Reading agent's number (0-based).")],
    source: Annotated[str, typer.Option(help="'inbox' (delivered by the fleet, Redis) or 'chain' (logs).")] = "inbox",
) -> None:
    """Decrypt and list an agent's messages (seed: MessageHub read)."""
    import redis as redis_lib

    from agentfleet.chain.session import ChainSession
    from agentfleet.messaging import read_chain, read_inbox

    if source not in {"inbox", "chain"}:
        raise typer.BadParameter("use 'inbox' or 'chain'", param_hint="--source")
    settings = load_settings()
    session = ChainSession.open(settings)
    account = _agent_account(session, agent)
    if source == "inbox":
        try:
            messages = read_inbox(redis_lib.Redis.from_url(settings.redis_url.get_secret_value()), account)
        except redis_lib.ConnectionError as exc:
            console.print(f"[red]cannot reach Redis for the inbox ({escape(str(exc))}); try --source chain[/red]")
            raise typer.Exit(code=1) from None
    else:
        messages = read_chain(session, account)
    table = Table("id", "from", "topic", "task", "message", title=f"messages to {account.address}")
    for m in messages:  # texts and topics come from other agents: shown as plain text, never as markup
        body = Text(m.text) if m.text is not None else Text(m.error or "", style="red")
        table.add_row(str(m.message_id), m.sender, Text(m.topic), str(m.task_id or "-"), body)
    console.print(table)


@app.command()
def stuck() -> None:
    """Work the fleet stopped retrying: results waiting for a human score, executions given up (they expire)."""
    import redis as redis_lib

    from workers import review
    from workers.idempotency import PREFIX

    settings = load_settings()
    client = redis_lib.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        waiting = review.pending(client)
        given_up = {
            key.decode().split(":")[-2]: client.hget(key, "last_error")
            for key in client.scan_iter(f"{PREFIX}:attempts:execute:*")
            if int(client.hget(key, "count") or 0) >= settings.execute_attempts
        }
    except redis_lib.ConnectionError as exc:
        console.print(Text(f"cannot reach Redis: {exc}", style="red"))
        raise typer.Exit(code=1) from None
    table = Table("task", "waits for", "why", title="stuck work")
    for task_id, item in sorted(waiting.items()):
        table.add_row(str(task_id), "a human score: agentfleet decide TASK SCORE", Text(str(item["reason"])))
    for task_id, error in sorted(given_up.items()):
        why = error.decode() if isinstance(error, bytes) else str(error or "")
        table.add_row(task_id, "expiry at its deadline (keeper)", Text(why))
    console.print(table)


@app.command()
def decide(
    task_id: Annotated[int, typer.Argument(min=1, help="A task waiting for a human score.")],
    score: Annotated[int, typer.Argument(min=0, max=100, help="The score, 0..100 (50+ passes).")],
) -> None:
    """Score a submitted result by hand (as the evaluator) and complete the task on chain."""
    import redis as redis_lib

    from agentfleet.chain import bindings
    from agentfleet.chain.session import ChainSession
    from workers import review

    settings = load_settings()
    session = ChainSession.open(settings)
    try:
        session.tasks.complete_task(session.evaluator, task_id, score)
    except (bindings.InvalidStatus, bindings.TaskNotFound) as exc:
        console.print(Text(f"task {task_id} cannot be completed: {type(exc).__name__}", style="red"))
        raise typer.Exit(code=1) from None
    review.resolve(redis_lib.Redis.from_url(settings.redis_url.get_secret_value()), task_id)
    console.print(Text(f"task {task_id} completed with score {score}"))


@app.command("settings")
def show_settings() -> None:
    """Print the effective settings (secrets masked)."""
    for name, value in load_settings().model_dump().items():
        console.print(Text(f"{name} = {value}"))


if __name__ == "__main__":
    app()
