"""``agentfleet`` commands for the market: create and browse tasks, accounts, agent reports and messages."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from shell.console import ModeOption, console, load_settings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from agentfleet.chain.session import ChainSession


def create_tasks(
    count: Annotated[int, typer.Option(min=1, max=500, help="Tasks to create.")] = 5,
    window: Annotated[int, typer.Option(min=5, help="Seconds until the bidding deadline.")] = 60,
    reward: Annotated[float, typer.Option(min=0.0001, help="Reward per task (ETH), escrowed.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed for the tags drawn from the agent types.")] = 1,
    mode: ModeOption = None,
) -> None:
    """Create example tasks as the requester (seed: run_agents.py --create-tasks)."""
    import random

    from agentfleet.chain.market import tag_text
    from agentfleet.chain.session import ChainSession
    from agentfleet.protocol.status import AuctionMode
    from shell.fleet import create_example_tasks

    settings = load_settings()
    session = ChainSession.open(settings)
    chosen = mode or settings.auction_mode
    for task_id in create_example_tasks(
        session, random.Random(seed), count, window=window, reward_eth=reward, mode=chosen
    ):
        task = session.tasks.get_task(task_id)
        tags = ", ".join(tag_text(t) for t in task.tags)
        label = AuctionMode(task.mode).label
        console.print(Text(f"task {task_id} ({label}): {tags}, {reward} ETH, bidding closes in {window} s"))


def tasks(
    tag: Annotated[str, typer.Option(help="Only tasks with this tag.")] = "",
    min_reward: Annotated[float, typer.Option(help="Only tasks paying at least this (ETH).")] = 0.0,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Browse open tasks through TaskMarketplace (seed: browsing and filtering tasks)."""
    import redis as redis_lib
    from web3 import Web3

    from agentfleet.bidding.sealed import bids_seen
    from agentfleet.chain.market import tag_id, tag_text
    from agentfleet.chain.session import ChainSession
    from agentfleet.protocol.status import AuctionMode

    settings = load_settings()
    session = ChainSession.open(settings)
    try:
        tag_filter = tag_id(tag) if tag else bytes(32)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tag") from None
    ids, _ = session.marketplace.filter_tasks(tag_filter, Web3.to_wei(min_reward, "ether"), 0, limit)
    client = redis_lib.Redis.from_url(settings.redis_url.get_secret_value())
    table = Table("task", "mode", "tags", "reward (ETH)", "bids seen", "closes at")
    for task_id in ids:
        task = session.tasks.get_task(task_id)
        try:
            seen = str(bids_seen(client, task_id))
        except redis_lib.ConnectionError:
            seen = "?"  # the fleet's Redis is not reachable: the chain part of the listing still shows
        table.add_row(
            str(task_id),
            AuctionMode(task.mode).label,
            Text(",".join(tag_text(t) for t in task.tags)),
            f"{task.reward / 1e18:.3f}",
            seen,
            str(task.biddingDeadline),
        )
    console.print(table)


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
