"""What the listener remembers in Redis: the checkpoint and the hashes of blocks it acted on.

Why Redis: the checkpoint must outlive the process (restart resumes with no gap) and must be written
only after the block's events were handed over, in the same store the work went to. The block-hash
window lets a restarted listener notice that a block it already processed was replaced (a reorg deeper
than the confirmation depth) and report the events of the orphaned blocks as reverted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from agentfleet.protocol import keys
from agentfleet.protocol.keys import text


@dataclass(frozen=True)
class BlockRef:
    number: int
    hash: str


class CheckpointStore:
    """Keys under ``{prefix}:{chain_id}``: ``checkpoint``, ``blocks`` (number -> hash), ``events:{n}``."""

    def __init__(self, client: redis.Redis, *, chain_id: int, prefix: str = keys.LISTENER, window: int = 512):
        self.redis = client
        self.base = f"{prefix}:{chain_id}"
        self.chain_id, self.prefix = chain_id, prefix
        self.window = window

    @property
    def checkpoint_key(self) -> str:
        return keys.listener_checkpoint(self.chain_id, self.prefix)

    @property
    def blocks_key(self) -> str:
        return f"{self.base}:blocks"

    def events_key(self, number: int) -> str:
        return f"{self.base}:events:{number}"

    def load(self) -> BlockRef | None:
        raw = self.redis.get(self.checkpoint_key)
        if raw is None:
            return None
        data = json.loads(raw)
        return BlockRef(int(data["number"]), str(data["hash"]))

    def commit(self, checkpoint: BlockRef, blocks: dict[int, str], events: dict[int, list[str]]) -> None:
        """Atomically record processed block hashes, their event ids, and the new checkpoint."""
        pipe = self.redis.pipeline(transaction=True)
        mapping: dict[str | bytes, str | bytes] = {str(n): h for n, h in blocks.items()}
        mapping[str(checkpoint.number)] = checkpoint.hash
        pipe.hset(self.blocks_key, mapping=mapping)  # type: ignore[arg-type]
        for number, ids in events.items():
            if ids:
                pipe.delete(self.events_key(number))
                pipe.rpush(self.events_key(number), *ids)
        pipe.set(self.checkpoint_key, json.dumps({"number": checkpoint.number, "hash": checkpoint.hash}))
        pipe.execute()
        self._prune(checkpoint.number)

    def known_blocks(self) -> dict[int, str]:
        return {int(k): text(v) for k, v in self.redis.hgetall(self.blocks_key).items()}

    def events_of(self, number: int) -> list[str]:
        return [text(v) for v in self.redis.lrange(self.events_key(number), 0, -1)]

    def rewind(self, to: BlockRef, orphaned: list[int]) -> None:
        """Forget orphaned blocks and move the checkpoint back to the fork point."""
        pipe = self.redis.pipeline(transaction=True)
        if orphaned:
            pipe.hdel(self.blocks_key, *[str(n) for n in orphaned])
            pipe.delete(*[self.events_key(n) for n in orphaned])
        pipe.set(self.checkpoint_key, json.dumps({"number": to.number, "hash": to.hash}))
        pipe.execute()

    def _prune(self, head: int) -> None:
        floor = head - self.window
        stale = [int(k) for k in self.redis.hkeys(self.blocks_key) if int(k) < floor]
        if stale:
            self.redis.hdel(self.blocks_key, *[str(n) for n in stale])
            self.redis.delete(*[self.events_key(n) for n in stale])
