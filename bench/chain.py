"""Benchmark: transactions/s of the ChainClient against anvil, next to a raw web3 baseline.

Run: ``.venv/bin/python -m bench.chain [--count 200]``. Both sides run in the same process against the
same fresh anvil, so machine noise cancels out in the printed ratio.

- baseline: raw web3, locally signed EIP-1559 transfers with nonces counted in a Python int, explicit gas,
  ``send_raw_transaction`` then ``wait_for_transaction_receipt`` (the least one can do per transaction).
- client: ``ChainClient.transfer`` with the Redis nonce allocator (lock, counter, fee cache, receipt wait).
- client x4 threads: the same with four concurrent senders for one address (the fleet's real situation).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from web3 import Web3

from agentfleet.chain.client import ChainClient
from agentfleet.chain.connect import http_web3
from agentfleet.chain.keys import derive_account
from agentfleet.chain.nonces import RedisNonceAllocator
from agentfleet.settings import DEV_MNEMONIC
from shell.services import AnvilNode, RedisServer


def raw_baseline(url: str, count: int) -> float:
    w3 = http_web3(url)
    account = derive_account(DEV_MNEMONIC, 3)
    nonce = w3.eth.get_transaction_count(account.address)
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    start = time.perf_counter()
    for i in range(count):
        tx = {
            "to": Web3.to_checksum_address("0x" + f"beef{i:036x}"),
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 2 * base + 10**9,
            "maxPriorityFeePerGas": 10**9,
            "nonce": nonce + i,
            "chainId": w3.eth.chain_id,
        }
        signed = account.sign_transaction(tx)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction), poll_latency=0.01)
    return count / (time.perf_counter() - start)


def client_run(url: str, redis_url: str, count: int, threads: int, index: int) -> float:
    w3 = http_web3(url)
    client = ChainClient(
        w3, nonces=RedisNonceAllocator(redis.Redis.from_url(redis_url), chain_id=w3.eth.chain_id), poll_interval=0.01
    )
    account = derive_account(DEV_MNEMONIC, index)

    def one(i: int) -> None:
        receipt = client.transfer(account, "0x" + f"beef{i:036x}", 1)
        assert receipt["status"] == 1

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(count)))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="transactions per measurement")
    args = parser.parse_args()
    node, server = AnvilNode.start(), RedisServer.start()
    try:
        client_run(node.url, server.url, 10, 1, 6)  # warm-up: connections, key derivation
        raw = raw_baseline(node.url, args.count)
        seq = client_run(node.url, server.url, args.count, 1, 4)
        par = client_run(node.url, server.url, args.count, 4, 5)
    finally:
        node.stop()
        server.stop()
    print(f"{'measurement':<34}{'tx/s':>10}{'ratio to raw':>14}")
    print(f"{'raw web3 (baseline)':<34}{raw:>10.1f}{1.0:>14.2f}")
    print(f"{'ChainClient sequential':<34}{seq:>10.1f}{seq / raw:>14.2f}")
    print(f"{'ChainClient 4 threads, one address':<34}{par:>10.1f}{par / raw:>14.2f}")


if __name__ == "__main__":
    main()
