"""ChainFollower: a confirmed, reorg-aware, gap-free walk over the contracts' logs.

One ``step`` reads at most one batch of confirmed blocks after the checkpoint, hands their logs to
``on_logs`` (which dispatches work), and only then moves the checkpoint. Why this order: a crash at any
point leaves the checkpoint behind the work, so the next run re-reads the batch (at least once) and the
dispatcher's idempotency keys make the repeat harmless (never twice).

Reorgs: anvil sends no ``removed`` logs, so the follower checks hashes itself.
- Logs are accepted only if each one's blockHash equals the canonical header's hash at that height
  (a reorg racing the read makes the batch be retried).
- Before each step the checkpoint block's hash is compared with the chain's; a mismatch is a reorg deeper
  than the confirmation depth: the follower walks back over the hashes it recorded to the fork point,
  reports the events of orphaned blocks through ``on_reverted`` (called on every deep reorg, even with no
  events: the fleet's own transactions may have been dropped, and the listener then resets nonce counters),
  and re-reads from there.
- At the head, each new block's parentHash is checked against the previous head (shallow reorgs are
  counted and logged; the confirmation depth keeps them from being acted on).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3 import HTTPProvider, Web3
from web3.types import LogReceipt, RPCEndpoint

from chain_listener.checkpoint import BlockRef, CheckpointStore
from chain_listener.rpc import AdaptiveLogFetcher, RpcPool

log = logging.getLogger(__name__)

OnLogs = Callable[[list[LogReceipt]], dict[int, list[str]]]
OnReverted = Callable[[list[str]], None]


@dataclass
class StepResult:
    """What one step did (for metrics and tests)."""

    from_block: int = 0
    to_block: int = -1
    logs: int = 0
    head: int = 0
    reorg_depth: int = 0
    retried: bool = False

    @property
    def advanced(self) -> bool:
        return self.to_block >= self.from_block


class ChainFollower:
    def __init__(
        self,
        *,
        pool: RpcPool,
        fetcher: AdaptiveLogFetcher,
        store: CheckpointStore,
        start_block: int,
        confirmations: int,
        on_logs: OnLogs,
        on_reverted: OnReverted,
        on_shallow_reorg: Callable[[int], None] | None = None,
    ) -> None:
        self.pool = pool
        self.fetcher = fetcher
        self.store = store
        self.start_block = start_block
        self.confirmations = confirmations
        self.on_logs = on_logs
        self.on_reverted = on_reverted
        self.on_shallow_reorg = on_shallow_reorg
        self._heads: dict[int, str] = {}
        self._head = 0

    # --- one step ------------------------------------------------------------------------------------
    def step(self) -> StepResult:
        head = self._watch_head()
        checkpoint = self.store.load()
        if checkpoint is not None and checkpoint.number >= self.start_block:
            depth = self._check_checkpoint(checkpoint)
            if depth:
                return StepResult(head=head, reorg_depth=depth)
        start = self.start_block if checkpoint is None else max(self.start_block, checkpoint.number + 1)
        safe = head - self.confirmations
        if start > safe:
            return StepResult(from_block=start, to_block=start - 1, head=head)
        end, logs = self.fetcher.fetch(start, safe)
        heights = sorted({int(entry["blockNumber"]) for entry in logs} | {end})
        hashes = self._hashes(heights)
        if any(_hex(entry["blockHash"]) != hashes[int(entry["blockNumber"])] for entry in logs):
            log.warning("blocks %s..%s changed while being read; retrying the batch", start, end)
            return StepResult(from_block=start, to_block=start - 1, head=head, retried=True)
        events = self.on_logs(logs)
        self.store.commit(
            BlockRef(end, hashes[end]),
            {n: hashes[n] for n in heights if n in events or n == end},
            events,
        )
        return StepResult(from_block=start, to_block=end, logs=len(logs), head=head)

    # --- reorgs ----------------------------------------------------------------------------------------
    def _check_checkpoint(self, checkpoint: BlockRef) -> int:
        """0 if the checkpoint is canonical, else rewind past a deep reorg and return its depth."""
        if self._hashes([checkpoint.number])[checkpoint.number] == checkpoint.hash:
            return 0
        known = self.store.known_blocks()
        candidates = sorted((n for n in known if n <= checkpoint.number), reverse=True)
        canonical = self._hashes(candidates) if candidates else {}
        fork = BlockRef(self.start_block - 1, "")
        for number in candidates:
            if canonical[number] == known[number]:
                fork = BlockRef(number, known[number])
                break
        orphaned = [n for n in candidates if n > fork.number]
        reverted = [event for n in sorted(orphaned) for event in self.store.events_of(n)]
        depth = checkpoint.number - fork.number
        log.error(
            "REORG deeper than %s confirmations: blocks %s..%s replaced; %s dispatched events reverted",
            self.confirmations,
            fork.number + 1,
            checkpoint.number,
            len(reverted),
        )
        self.on_reverted(reverted)
        self.store.rewind(fork, orphaned)
        return depth

    def _watch_head(self) -> int:
        """Latest block number; counts shallow reorgs by parentHash (they are covered by confirmations)."""
        block = self.pool.call(lambda w3: w3.eth.get_block("latest"))
        number, block_hash, parent = int(block["number"]), _hex(block["hash"]), _hex(block["parentHash"])
        known_parent = self._heads.get(number - 1)
        replaced = self._heads.get(number)
        if (known_parent and known_parent != parent) or (replaced and replaced != block_hash):
            depth = 1 + sum(1 for n in self._heads if n >= number)
            log.warning("reorg at the head: block %s replaced (depth >= %s)", number, depth)
            if self.on_shallow_reorg:
                self.on_shallow_reorg(depth)
            self._heads = {n: h for n, h in self._heads.items() if n < number - 1}
        self._heads[number] = block_hash
        self._head = number
        for old in [n for n in self._heads if n < number - 64]:
            del self._heads[old]
        return number

    def _hashes(self, numbers: list[int]) -> dict[int, str]:
        """Canonical hashes of the given heights, fetched in one JSON-RPC batch. Heights above the head
        (the chain was rolled back) have no canonical block: they map to "" and so never match."""
        existing = [n for n in numbers if n <= self._head]

        def fetch(w3: Web3) -> dict[int, str]:
            if isinstance(w3.provider, HTTPProvider):  # raw: web3's block formatters were half of the cost
                calls = [(RPCEndpoint("eth_getBlockByNumber"), [hex(n), False]) for n in existing]
                answers: Any = w3.provider.make_batch_request(calls)
                if isinstance(answers, list) and all(isinstance(a, dict) and "result" in a for a in answers):
                    raw = [a["result"] for a in answers if a["result"]]
                    return {int(b["number"], 16): str(b["hash"]).lower() for b in raw}
            with w3.batch_requests() as batch:  # other providers, and any error answer (raised here)
                for number in existing:
                    batch.add(w3.eth.get_block(number))
                blocks: list[Any] = list(batch.execute())
            return {int(b["number"]): _hex(b["hash"]) for b in blocks}

        found = self.pool.call(fetch) if existing else {}
        return {n: found.get(n, "") for n in numbers}


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()
