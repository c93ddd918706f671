"""Nonce recovery of the chain client against a real anvil and a real redis-server.

Three ways a transaction can get stuck or lose its meaning, each provoked for real:
a reorg that leaves the shared Redis counter ahead of the node, a transaction queued behind missing
nonces, and a race lost inside one block (the failed receipt must still name the contract error).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from hexbytes import HexBytes
from web3 import Web3

from agentfleet.chain import bindings
from agentfleet.chain.client import ChainClient
from agentfleet.chain.connect import http_web3
from agentfleet.chain.keys import derive_account
from agentfleet.chain.local import advance_time, fund
from agentfleet.chain.nonces import RedisNonceAllocator
from agentfleet.settings import DEV_MNEMONIC
from shell.services import AnvilNode
from testkit.chain import ETH, create_task, deployed_market
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil

CLIENT_LOG = "agentfleet.chain.client"
SENDER_INDEX = 11  # an agent key no other part of these tests uses
SINK = Web3.to_checksum_address("0x" + "ab" * 20)


def _rpc(w3: Web3, method: str, params: list[Any]) -> Any:
    reply = w3.provider.make_request(method, params)  # type: ignore[arg-type]
    assert "error" not in reply, reply
    return reply["result"]


def _redis_client(w3: Web3, client: redis.Redis) -> tuple[ChainClient, RedisNonceAllocator]:
    nonces = RedisNonceAllocator(client, chain_id=w3.eth.chain_id)
    return ChainClient(w3, nonces=nonces, tx_timeout=10, poll_interval=0.02, gap_check_interval=0.3), nonces


def test_counter_ahead_after_reorg_resyncs_from_the_node(
    anvil: AnvilNode, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    w3 = http_web3(anvil.url)
    client, nonces = _redis_client(w3, redis_client)
    account = derive_account(DEV_MNEMONIC, SENDER_INDEX)
    fund(w3, account.address, 10 * ETH)
    start = w3.eth.get_transaction_count(account.address)
    for _ in range(3):
        assert client.transfer(account, SINK, 1)["status"] == 1
    assert w3.eth.get_transaction_count(account.address) == start + 3
    assert nonces.peek(account.address, lambda: -1) == start + 3

    _rpc(w3, "anvil_reorg", [3, []])  # the three blocks are replaced by empty ones: the transfers are gone

    assert w3.eth.get_transaction_count(account.address, "latest") == start
    assert w3.eth.get_transaction_count(account.address, "pending") == start  # not back in the pool either
    assert nonces.peek(account.address, lambda: -1) == start + 3  # the shared counter is ahead: a gap

    with caplog.at_level(logging.INFO, logger=CLIENT_LOG):
        began = time.monotonic()
        receipt = client.transfer(account, SINK, 1)
        took = time.monotonic() - began
    assert receipt["status"] == 1
    assert took < 3, f"send after the reorg took {took:.1f} s (tx_timeout {client.tx_timeout} s)"
    assert int(w3.eth.get_transaction(receipt["transactionHash"])["nonce"]) == start  # the node's count won
    assert w3.eth.get_transaction_count(account.address) == start + 1
    assert nonces.peek(account.address, lambda: -1) == start + 1  # counter and node agree again
    gaps = [r for r in caplog.records if r.name == CLIENT_LOG and "nonce gap" in r.getMessage()]
    assert len(gaps) == 1 and gaps[0].levelno == logging.WARNING
    assert f"counter {start + 3}, node pending {start}" in gaps[0].getMessage()


def test_transaction_queued_behind_a_gap_gets_the_gap_filled(
    anvil: AnvilNode, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    w3 = http_web3(anvil.url)
    client, nonces = _redis_client(w3, redis_client)
    account = derive_account(DEV_MNEMONIC, SENDER_INDEX)
    fund(w3, account.address, 10 * ETH)
    assert client.transfer(account, SINK, 1)["status"] == 1  # the counter now exists in Redis
    n = w3.eth.get_transaction_count(account.address)

    # Our transaction went out at n+2 (the counter said so), but n and n+1 vanished: it can never be mined.
    tx: dict[str, Any] = {
        "to": SINK,
        "value": 7,
        "gas": 21_000,
        "chainId": client.chain_id,
        "nonce": n + 2,
        **client._fresh_fees(),
    }
    signed = account.sign_transaction(tx)
    tx_hash = HexBytes(w3.eth.send_raw_transaction(signed.raw_transaction))
    nonces.advance(account.address, n + 3)
    time.sleep(0.3)
    assert w3.eth.get_transaction_count(account.address, "latest") == n  # queued, not mined

    with caplog.at_level(logging.INFO, logger=CLIENT_LOG):
        began = time.monotonic()
        receipt = client._wait(account, bytes(signed.raw_transaction), tx_hash, n + 2)
        took = time.monotonic() - began
    assert receipt["status"] == 1 and receipt["transactionHash"] == tx_hash
    assert took < 3, f"waiting behind the gap took {took:.1f} s"
    assert w3.eth.get_transaction_count(account.address, "latest") == n + 3
    sent = _sent_by(w3, account.address, receipt["blockNumber"])
    for missing in (n, n + 1):  # the fillers: zero-value self-transfers
        fillers = [t for t in sent if int(t["nonce"]) == missing]
        assert len(fillers) == 1, (missing, sent)
        assert fillers[0]["to"] == account.address and int(fillers[0]["value"]) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == CLIENT_LOG]
    assert sum("filling 2 nonce(s)" in m for m in messages) == 1, messages
    assert not any("dropped" in m for m in messages), messages  # queued, not lost: no re-broadcast needed
    assert nonces.peek(account.address, lambda: -1) == -1  # the counter was forgotten: the node is asked next

    assert client.transfer(account, SINK, 1)["status"] == 1  # and the next send takes n+3 from the node
    assert w3.eth.get_transaction_count(account.address) == n + 4


def _sent_by(w3: Web3, address: str, up_to: int) -> list[Any]:
    """Transactions from ``address`` in the last few blocks up to ``up_to``."""
    found = []
    for number in range(max(0, up_to - 5), up_to + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        found += [t for t in block["transactions"] if not isinstance(t, bytes) and t["from"] == address]
    return found


def test_race_lost_in_the_same_block_keeps_its_named_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with deployed_market("anvil", tmp_path, register=1) as s:
        w3 = s.client.w3
        task_id = create_task(s)
        s.auction.place_bid(s.agent(0), task_id, ETH // 2)
        advance_time(w3, 301)  # the auction is due: both keepers may finalize it

        # Both keepers estimate before either sends (estimates pass: nothing is finalized yet), then send.
        both_estimated = threading.Barrier(2, timeout=10)
        estimate = s.client._estimate

        def estimate_then_wait(tx: dict[str, Any]) -> int:
            gas = estimate(tx)
            both_estimated.wait()
            return gas

        failed: list[Any] = []
        explain = s.client._explain_failure

        def record_failure(*args: Any) -> Any:
            failed.append(args[-1])  # the receipt
            return explain(*args)

        monkeypatch.setattr(s.client, "_estimate", estimate_then_wait)
        monkeypatch.setattr(s.client, "_explain_failure", record_failure)
        outcomes: dict[str, Any] = {}

        def keeper(name: str) -> None:
            try:
                outcomes[name] = s.auction.finalize(getattr(s, name), task_id)
            except Exception as exc:
                outcomes[name] = exc

        _rpc(w3, "evm_setAutomine", [False])
        try:
            threads = [threading.Thread(target=keeper, args=(name,)) for name in ("requester", "evaluator")]
            for thread in threads:
                thread.start()
            pending = lambda: int(_rpc(w3, "txpool_status", [])["pending"], 16)  # noqa: E731
            wait_until(lambda: pending() >= 2, 5, "both finalize transactions in the pool", interval=0.02)
            assert pending() == 2
            _rpc(w3, "evm_mine", [])
            for thread in threads:
                thread.join(timeout=10)
                assert not thread.is_alive()
        finally:
            _rpc(w3, "evm_setAutomine", [True])

        receipts = [o for o in outcomes.values() if not isinstance(o, Exception)]
        raised = [o for o in outcomes.values() if isinstance(o, Exception)]
        assert len(receipts) == 1 and receipts[0]["status"] == 1, outcomes
        assert len(raised) == 1 and type(raised[0]) is bindings.AlreadyFinalized, outcomes
        assert len(failed) == 1 and failed[0]["status"] == 0
        assert failed[0]["blockNumber"] == receipts[0]["blockNumber"]  # lost the race inside one block
        assert s.auction.is_finalized(task_id)
