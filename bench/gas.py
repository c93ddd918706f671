"""Gas per contract operation and per task life, in both auction modes, from receipts on a fresh anvil.

Run: ``.venv/bin/python -m bench.gas``. One task's whole life (create, N bids, finalize, submit, complete)
with 1, 5 and 20 bidders, open and sealed; payments are pushed at completion, so no withdrawal follows. Gas
is deterministic for the same contracts and inputs, so the figures need no baseline run beside them: the
previous contracts' figures are the README gas table's "before" column (measured with this script before
issue 12), and each line prints the ratio against them.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from collections import defaultdict
from pathlib import Path

import redis

from agentfleet.bidding.closing import close_auction
from agentfleet.bidding.sealed import BidBook, sign_bid
from agentfleet.chain.local import advance_time, chain_now, fund
from agentfleet.chain.market import TaskSpec, post_task
from agentfleet.chain.session import ChainSession
from agentfleet.protocol.status import AuctionMode
from shell.services import RedisServer
from testkit.chain import ETH, deployed_market

BIDDERS = (1, 5, 20)
TEXT = "Write a literature review of reinforcement learning for auctions, with sources."
# The contracts before issue 12 (this script's figures then; with a withdrawal per task, bids by transaction).
BEFORE = {1: 816_000, 5: 1_390_000, 20: 3_750_000}
BEFORE_BID = 157_000


def register_bidders(session: ChainSession, count: int) -> None:
    """Agents 0..count-1 registered with the task's capability (deployed_market registers the first three)."""
    w3 = session.client.w3
    for number in range(count):
        agent = session.agent(number)
        if not session.registry.is_registered(agent.address):
            fund(w3, agent.address, 10 * ETH)
            session.registry.register(agent, f"Bidder{number}", ["research"], [80])


def task_life(session: ChainSession, book: BidBook, bidders: int, mode: AuctionMode, ops: dict[str, list[int]]) -> int:
    """One task from creation to settlement; returns the gas of every transaction it took. Bids descend, so
    every open bid takes the lead: the dearest case for the running best."""
    w3 = session.client.w3
    deadline = chain_now(w3) + 120
    spec = TaskSpec(TEXT, ("research",), ETH, deadline, 3600, session.evaluator.address, mode=mode)
    task_id = post_task(session, session.requester, spec)
    receipt = w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][-1])
    total = add(ops, f"createTask ({mode.label})", receipt)
    for number in range(bidders):
        agent, amount = session.agent(number), ETH // 2 - number
        if mode == AuctionMode.OPEN:
            total += add(ops, "placeBid (open)", session.auction.place_bid(agent, task_id, amount))
        else:
            bid = sign_bid(
                agent,
                chain_id=w3.eth.chain_id,
                auction=session.auction.address,
                task_id=task_id,
                amount=amount,
                expiry=deadline + 7200,
            )
            book.publish(bid)
    advance_time(w3, 121)
    close_auction(session, book, task_id, caller=session.requester, now=chain_now(w3))
    total += add(ops, f"finalize ({mode.label}, {bidders} bids)", last_receipt(session))
    winner_address = session.tasks.get_task(task_id).assignee
    winner = next(session.agent(n) for n in range(bidders) if session.agent(n).address == winner_address)
    digest = hashlib.sha256(f"result of {task_id}".encode()).digest()
    total += add(ops, "submitResult", session.tasks.submit_result(winner, task_id, digest, f"sha256:{digest.hex()}"))
    total += add(ops, "completeTask (pays both)", session.tasks.complete_task(session.evaluator, task_id, 80))
    return total


def last_receipt(session: ChainSession) -> object:
    w3 = session.client.w3
    return w3.eth.get_transaction_receipt(w3.eth.get_block("latest")["transactions"][-1])


def add(ops: dict[str, list[int]], name: str, receipt: object) -> int:
    value = int(receipt["gasUsed"])  # type: ignore[index]
    ops[name].append(value)
    return value


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    ops: dict[str, list[int]] = defaultdict(list)
    lives: dict[tuple[int, AuctionMode], int] = {}
    server = RedisServer.start()
    try:
        with deployed_market("anvil", Path(tempfile.mkdtemp()), register=0) as session:
            book = BidBook(redis.Redis.from_url(server.url))
            register_bidders(session, max(BIDDERS))
            for bidders in BIDDERS:
                for mode in AuctionMode:
                    lives[(bidders, mode)] = task_life(session, book, bidders, mode, ops)
    finally:
        server.stop()
    print(f"{'operation':<36}{'gas, min':>12}{'gas, max':>12}")
    for name, values in ops.items():
        print(f"{name:<36}{min(values):>12,}{max(values):>12,}")
    print()
    print(f"{'task life':<20}{'open':>12}{'sealed':>12}{'before (open)':>16}{'open/before':>13}{'sealed/before':>15}")
    for n in BIDDERS:
        open_, sealed = lives[(n, AuctionMode.OPEN)], lives[(n, AuctionMode.SEALED)]
        ratios = f"{open_ / BEFORE[n]:>13.2f}{sealed / BEFORE[n]:>15.2f}"
        print(f"{f'{n} bidder(s)':<20}{open_:>12,}{sealed:>12,}{BEFORE[n]:>16,}{ratios}")
    bid = max(ops["placeBid (open)"])
    print(f"a losing bidder pays: open up to {bid:,} gas ({bid / BEFORE_BID:.2f} of before), sealed 0")
    print(f"gas per task (5 bidders, sealed): {lives[(5, AuctionMode.SEALED)]}")
    print(f"gas per task (5 bidders, open): {lives[(5, AuctionMode.OPEN)]}")


if __name__ == "__main__":
    main()
