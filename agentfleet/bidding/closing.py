"""Closing an auction after its deadline, in the task's mode: the keeper's one entry point.

Open mode: ``finalize`` (anyone; the contract already holds the running best). Sealed mode: the requester
submits the bid book to ``finalizeSealed``. Bids that cannot pass the contract's checks (bad signature,
expired, agent no longer active, out of range, signed after the deadline) are left out before sending, and
so are all but the best ``MAX_BIDS_PER_TASK`` (the contract's cap on one call); a bid refused by name on
chain (its standing changed meanwhile) is dropped and the rest sent again. After the reveal window anyone
closes the task without bids (the requester is refunded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

from eth_account.signers.local import LocalAccount
from web3 import Web3

from agentfleet.bidding.sealed import BidBook, SealedBid, signer_of
from agentfleet.chain import bindings as b
from agentfleet.chain.session import ChainSession
from agentfleet.protocol import limits
from agentfleet.protocol.status import AuctionMode, TaskStatus

log = logging.getLogger(__name__)

# Refusals that name one bid's agent: drop that bid and send the others again.
_BID_ERRORS = (b.InvalidBidSignature, b.BidExpired, b.AgentInactive, b.NotRegisteredAgent)


@dataclass(frozen=True)
class Closing:
    status: str  # finalized | already_finalized | still_open | not_requester | not_open (no such task)
    mode: AuctionMode
    bids: int = 0  # sealed: how many signed bids were submitted


def close_auction(session: ChainSession, book: BidBook, task_id: int, *, caller: LocalAccount, now: int) -> Closing:
    """Finalize ``task_id`` if its bidding deadline passed (``now`` is the chain's clock)."""
    try:
        requester, reward, deadline, status, mode_value = session.tasks.bidding_terms(task_id)
    except b.TaskNotFound:
        return Closing("not_open", AuctionMode.OPEN)  # no such task (or a reorg removed it)
    mode = AuctionMode(mode_value)
    if status != TaskStatus.OPEN:
        return Closing("already_finalized", mode)
    if now < deadline:
        return Closing("still_open", mode)
    try:
        if mode == AuctionMode.OPEN:
            session.auction.finalize(caller, task_id)
            return Closing("finalized", mode)
        return _close_sealed(session, book, task_id, caller, requester, reward, deadline, now)
    except (b.AlreadyFinalized, b.TaskNotOpen):
        return Closing("already_finalized", mode)
    except b.BiddingStillOpen:
        return Closing("still_open", mode)  # the chain's clock lags ours: the next sweep tries again


def _close_sealed(
    session: ChainSession,
    book: BidBook,
    task_id: int,
    caller: LocalAccount,
    requester: str,
    reward: int,
    deadline: int,
    now: int,
) -> Closing:
    if now > deadline + limits.REVEAL_WINDOW:  # the bids are void: anyone closes with none (refund)
        session.auction.finalize_sealed(caller, task_id, [])
        return Closing("finalized", AuctionMode.SEALED)
    if caller.address.lower() != requester.lower():
        return Closing("not_requester", AuctionMode.SEALED)  # only the requester reveals within the window
    chain_id, auction = session.client.chain_id, session.auction.address
    usable: list[tuple[SealedBid, int]] = []
    for bid in book.bids(task_id):
        reputation = _usable(session, bid, requester, reward, deadline, now, chain_id, auction)
        if reputation is not None:
            usable.append((bid, reputation))
    bids = best_bids(usable, limits.MAX_BIDS_PER_TASK)
    for _attempt in range(len(bids) + 1):
        try:
            session.auction.finalize_sealed(caller, task_id, [bid.call_arg() for bid in bids])
            return Closing("finalized", AuctionMode.SEALED, len(bids))
        except _BID_ERRORS as exc:
            agent = str(exc.values[0]) if exc.values else ""  # every bid error names the agent first
            log.warning("task %s: sealed bid of %s refused on chain (%s); closing without it", task_id, agent, exc)
            remaining = [bid for bid in bids if bid.agent.lower() != agent.lower()]
            if len(remaining) == len(bids):
                raise
            bids = remaining
    raise RuntimeError("unreachable: every attempt drops a bid")


def best_bids(bids: list[tuple[SealedBid, int]], limit: int) -> list[SealedBid]:
    """At most ``limit`` bids (the contract's cap), the best by the auction's rule (lowest amount / (reputation
    + 1), exactly; ties to the lower address), sorted by address as ``finalizeSealed`` takes them. Leaving out
    the worst keeps a fleet of more than ``limit`` bidders from making every sealed auction revert."""
    ranked = sorted(bids, key=lambda pair: (Fraction(pair[0].amount, pair[1] + 1), int(pair[0].agent, 16)))
    return sorted((bid for bid, _reputation in ranked[:limit]), key=lambda bid: int(bid.agent, 16))


def _usable(
    session: ChainSession,
    bid: SealedBid,
    requester: str,
    reward: int,
    deadline: int,
    now: int,
    chain_id: int,
    auction: str,
) -> int | None:
    """The contract's checks, done first so one bad bid in the book does not cost a reverted attempt; the
    agent's reputation when the bid passes them, else None."""
    reason = None
    standing = None
    if bid.received_at and bid.received_at >= deadline:
        reason = "reached the book after the deadline"
    elif bid.agent.lower() == requester.lower():
        reason = "the requester's own bid"
    elif not 0 < bid.amount <= reward:
        reason = "amount out of range"
    elif bid.expiry < now + 60:
        reason = "expires before it can be mined"
    elif (signer_of(bid, chain_id=chain_id, auction=auction) or "").lower() != bid.agent.lower():
        reason = "signature does not match"
    else:
        registered, active, reputation = session.registry.standing(Web3.to_checksum_address(bid.agent))
        if registered and active:
            standing = int(reputation)
        else:
            reason = "agent not registered or inactive"
    if reason:
        log.warning("task %s: leaving out the sealed bid of %s: %s", bid.task_id, bid.agent, reason)
    return standing
