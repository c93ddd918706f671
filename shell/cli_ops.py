"""``agentfleet`` commands for operators: check the LLM, list stuck work, score a result by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shell.console import console, load_settings


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
