"""Gas per contract operation and per task life, measured from receipts on a fresh anvil.

Run: ``.venv/bin/python -m bench.gas``. One task's whole life (create, N bids, finalize, submit, complete,
withdraw) with 1, 5 and 20 bidders, plus what the fleet adds per task when ``AGENTFLEET_ACTION_LOGGING`` is on
(an ActionLogger transaction per bid and per submission). Gas is deterministic for the same contracts and
inputs, so the figures need no baseline run beside them: the previous contracts' figures are recorded in the
README's gas table, and this prints the current ones.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentfleet.chain.local import advance_time, chain_now, fund
from agentfleet.chain.session import ChainSession
from testkit.chain import ETH, deployed_market

BIDDERS = (1, 5, 20)


def gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def register_bidders(session: ChainSession, count: int) -> None:
    """Agents 0..count-1 registered with the task's capability (deployed_market registers the first three)."""
    w3 = session.client.w3
    for number in range(count):
        agent = session.agent(number)
        if not session.registry.is_registered(agent.address):
            fund(w3, agent.address, 10 * ETH)
            session.registry.register(agent, f"Bidder{number}", ["research"], [80])


def task_life(session: ChainSession, bidders: int, ops: dict[str, list[int]], *, action_logs: bool) -> int:
    """One task from creation to the winner's withdrawal; returns the gas of every transaction it took."""
    deadline = chain_now(session.client.w3) + 120
    receipt = session.tasks.create_task(
        session.requester,
        "Write a literature review",
        ["research"],
        deadline,
        3600,
        session.evaluator.address,
        value=ETH,
    )
    task_id = session.tasks.task_count()
    total = ops_add(ops, "createTask", gas(receipt))
    for number in range(bidders):
        agent = session.agent(number)
        total += ops_add(ops, "placeBid", gas(session.auction.place_bid(agent, task_id, ETH // 2 + number)))
        if action_logs:
            total += ops_add(ops, "logAction", gas(session.actions.log_action(agent, task_id, "bid", b"\x01" * 32)))
    advance_time(session.client.w3, 121)
    total += ops_add(ops, "finalize", gas(session.auction.finalize(session.requester, task_id)))
    winner_address = session.tasks.get_task(task_id).assignee
    winner = next(session.agent(n) for n in range(bidders) if session.agent(n).address == winner_address)
    digest = hashlib.sha256(f"result of {task_id}".encode()).digest()
    total += ops_add(ops, "submitResult", gas(session.tasks.submit_result(winner, task_id, digest, "sha256:x")))
    if action_logs:
        total += ops_add(ops, "logAction", gas(session.actions.log_action(winner, task_id, "submit", digest)))
    total += ops_add(ops, "completeTask", gas(session.tasks.complete_task(session.evaluator, task_id, 80)))
    total += ops_add(ops, "withdraw", gas(session.incentives.withdraw(winner)))
    return total


def ops_add(ops: dict[str, list[int]], name: str, value: int) -> int:
    ops[name].append(value)
    return value


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    ops: dict[str, list[int]] = defaultdict(list)
    lives: dict[tuple[int, bool], int] = {}
    with deployed_market("anvil", Path(tempfile.mkdtemp()), register=0) as session:
        register_bidders(session, max(BIDDERS))
        for bidders in BIDDERS:
            for action_logs in (False, True):
                lives[(bidders, action_logs)] = task_life(session, bidders, ops, action_logs=action_logs)
    print(f"{'operation (open auction)':<32}{'gas, min':>12}{'gas, max':>12}")
    for name, values in ops.items():
        print(f"{name:<32}{min(values):>12,}{max(values):>12,}")
    print()
    print(f"{'task life (open auction)':<32}{'gas':>12}{'with action logs':>20}")
    for bidders in BIDDERS:
        print(f"{f'{bidders} bidder(s)':<32}{lives[(bidders, False)]:>12,}{lives[(bidders, True)]:>20,}")
    print(f"a losing bidder pays (open): up to {max(ops['placeBid'])} (+ {max(ops['logAction'])} with action logs)")
    print(f"gas per task (5 bidders, open): {lives[(5, False)]}")


if __name__ == "__main__":
    main()
