"""One task's whole life on an embedded chain, step by step (the README's first command, for now).

Why this exists before the fleet: it proves the contracts, the deployer, key derivation, signing and
nonces work end to end on a fresh machine with nothing installed by hand, and it shows a newcomer the
protocol (cfp -> propose -> accept -> inform-result -> inform-done) in under a minute.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from agentfleet.chain.connect import http_web3, inprocess_web3
from agentfleet.chain.deploy import deploy_all
from agentfleet.chain.local import advance_time, chain_now, fund
from agentfleet.chain.market import TaskSpec, content_hash, post_task
from agentfleet.chain.session import ChainSession
from agentfleet.settings import Settings
from shell.services import AnvilNode

ETH = 10**18

AGENTS: tuple[tuple[str, list[str], list[int], float], ...] = (
    ("ResearchAgent", ["research", "writing", "analysis"], [90, 80, 75], 0.60),
    ("DevelopmentAgent", ["coding", "testing", "blockchain"], [90, 80, 70], 0.45),
    ("AnalyticsAgent", ["data_analysis", "statistics", "research"], [85, 80, 60], 0.70),
)


@dataclass
class WalkResult:
    task_id: int
    winner: str
    winner_name: str
    price: int
    score: int
    payment: int
    reputation_before: int
    reputation_after: int
    status: int


def walk_one_task(
    session: ChainSession, *, say: Callable[[str], None] = print, record_path: Path | None = None
) -> WalkResult:
    """Deploy, register three agents, and take one task from creation to payment."""
    w3 = session.client.w3
    for index in (session.settings.deployer_index, session.settings.requester_index, session.settings.evaluator_index):
        fund(w3, session.account(index).address, 100 * ETH)
    record = deploy_all(session.client, session.deployer, record_path=record_path)
    session.reset_contracts()
    say(f"deployed 7 contracts on chain {record.chain_id} from block {record.deployment_block}")

    names: dict[str, str] = {}
    for number, (name, capabilities, weights, _) in enumerate(AGENTS):
        agent = session.agent(number)
        fund(w3, agent.address, 10 * ETH)
        if not session.registry.is_registered(agent.address):
            session.registry.register(agent, name, capabilities, weights)
        names[agent.address] = name
        say(f"registered {name} {agent.address} capabilities={capabilities}")

    now = chain_now(w3)
    reward = 1 * ETH
    text = "Summarise the state of research on decentralised agent coordination."
    spec = TaskSpec(text, ("research", "writing"), reward, now + 300, 3600, session.evaluator.address)
    task_id = post_task(session, session.requester, spec)
    say(
        f"cfp: task {task_id} created with {Web3.from_wei(reward, 'ether')} ETH escrowed, tags research+writing, "
        f"text keccak {content_hash(text).hex()[:16]}... published in the event (open auction)"
    )

    for number, (name, _, _, fraction) in enumerate(AGENTS):
        amount = int(reward * fraction)
        session.auction.place_bid(session.agent(number), task_id, amount)
        say(f"propose: {name} bids {Web3.from_wei(amount, 'ether')} ETH")

    advance_time(w3, 301)
    session.auction.finalize(session.requester, task_id)
    task = session.tasks.get_task(task_id)
    winner, price = task.assignee, task.price
    say(f"accept: auction finalized, winner {names[winner]} at {Web3.from_wei(price, 'ether')} ETH")

    result_text = f"[offline walkthrough result] summary for task {task_id}"
    digest = hashlib.sha256(result_text.encode()).digest()
    agent = next(a for a in (session.agent(i) for i in range(len(AGENTS))) if a.address == winner)
    reputation_before = session.registry.reputation_of(winner)
    session.tasks.submit_result(agent, task_id, digest, f"sha256:{digest.hex()}")
    say(f"inform-result: {names[winner]} submitted result sha256:{digest.hex()[:16]}...")

    score = 85
    balance_before = w3.eth.get_balance(winner)
    session.tasks.complete_task(session.evaluator, task_id, score)
    payment = w3.eth.get_balance(winner) - balance_before  # pushed at settlement (the evaluator paid the gas)
    reputation_after = session.registry.reputation_of(winner)
    say(
        f"inform-done: scored {score}/100, reputation {reputation_before} -> {reputation_after}; "
        f"paid: {names[winner]} received {Web3.from_wei(payment, 'ether')} ETH, pushed at settlement"
    )
    return WalkResult(
        task_id=task_id,
        winner=winner,
        winner_name=names[winner],
        price=price,
        score=score,
        payment=payment,
        reputation_before=reputation_before,
        reputation_after=reputation_after,
        status=session.tasks.status_of(task_id),
    )


def run_embedded(*, chain: str = "inprocess", say: Callable[[str], None] = print) -> WalkResult:
    """Walk one task on a throwaway chain: in-process py-evm (default) or a local anvil."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentfleet-walk-")))
        if chain == "anvil":
            node = AnvilNode.start()
            stack.callback(node.stop)
            w3 = http_web3(node.url)
        elif chain == "inprocess":
            w3 = inprocess_web3()
        else:
            raise ValueError(f"unknown chain {chain!r}: use 'inprocess' or 'anvil'")
        settings = Settings(contract_addresses_path=tmp / "contract_addresses.json")
        session = ChainSession.open(settings, w3=w3)
        return walk_one_task(session, say=say, record_path=settings.contract_addresses_path)
