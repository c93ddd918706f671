"""ChainClient: one place that signs, sends and waits, for every process of the fleet.

Why not ``contract.functions.f().transact()``: the node would sign with unlocked accounts and pick
nonces itself, which collides as soon as two workers act for one agent. Here keys stay in the process
(derived from the mnemonic), gas is estimated first (so a revert is reported by name *before* a nonce is
used), nonces come from a :class:`~agentfleet.chain.nonces.NonceAllocator`, and receipts are awaited
outside the nonce lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import MethodUnavailable, TransactionNotFound, Web3RPCError
from web3.types import TxParams, TxReceipt

from agentfleet.chain import errors
from agentfleet.chain.artifacts import Artifact, Deployment, load_artifact
from agentfleet.chain.nonces import LocalNonceAllocator, NonceAllocator

log = logging.getLogger(__name__)

_NONCE_TOO_LOW = ("nonce too low", "nonce is too low", "already been used", "invalid nonce")
_ALREADY_KNOWN = ("already known", "known transaction", "already imported")
_UNDERPRICED = ("replacement transaction underpriced", "underpriced")


def _message(exc: BaseException) -> str:
    return str(exc).lower()


class ChainClient:
    """Signs and sends transactions and makes calls against the fleet's contracts."""

    def __init__(
        self,
        w3: Web3,
        *,
        deployment: Deployment | None = None,
        nonces: NonceAllocator | None = None,
        gas_multiplier: float = 1.25,
        tx_timeout: float = 60.0,
        poll_interval: float = 0.05,
        gap_check_interval: float = 3.0,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.nonces: NonceAllocator = nonces or LocalNonceAllocator()
        self.gas_multiplier = gas_multiplier
        self.tx_timeout = tx_timeout
        self.poll_interval = poll_interval
        self.gap_check_interval = gap_check_interval  # seconds between "can it still be mined?" checks
        self.chain_id: int = w3.eth.chain_id
        self._contracts: dict[str, Contract] = {}
        self._fee_cache: tuple[float, dict[str, int]] | None = None
        self._pending_estimates = True

    def use_deployment(self, deployment: Deployment) -> None:
        """Point the client at another deployment (drops cached contract objects)."""
        self.deployment = deployment
        self._contracts.clear()

    # --- contracts -------------------------------------------------------------------------------------
    def contract(self, name: str, address: str | None = None) -> Contract:
        """A web3 contract object for ``name`` at its deployed address (or ``address``)."""
        if address is not None:
            return self.w3.eth.contract(
                address=Web3.to_checksum_address(address), abi=load_artifact(name).abi, decode_tuples=True
            )
        if name not in self._contracts:
            if self.deployment is None:
                raise errors.ChainError("no deployment loaded: deploy first or pass an address")
            self._contracts[name] = self.contract(name, self.deployment.address(name))
        return self._contracts[name]

    # --- reads -------------------------------------------------------------------------------------------
    def call(self, fn: ContractFunction, *, sender: str | None = None, block: Any = "latest") -> Any:
        """``fn.call()`` with reverts translated into named errors."""
        params: TxParams = {"from": Web3.to_checksum_address(sender)} if sender else {}
        try:
            return fn.call(params, block_identifier=block)
        except Exception as exc:
            if errors.is_revert(exc):
                raise errors.translate(exc) from exc
            raise

    # --- writes ------------------------------------------------------------------------------------------
    def transact(self, account: LocalAccount, fn: ContractFunction, *, value: int = 0) -> TxReceipt:
        """Estimate, sign, send and wait for ``fn`` from ``account``; raise the named error on revert."""
        tx: dict[str, Any] = {
            "from": account.address,
            "to": fn.address,
            "value": value,
            "data": fn._encode_transaction_data(),
        }
        try:  # estimating first makes a revert surface by name before any nonce is taken
            tx["gas"] = int(self._estimate(tx) * self.gas_multiplier)
        except Exception as exc:
            if errors.is_revert(exc):
                raise errors.translate(exc) from exc
            raise
        receipt = self.send(account, tx)
        if receipt["status"] != 1:
            raise self._explain_failure(account, fn, value, receipt)
        return receipt

    def _estimate(self, tx: dict[str, Any]) -> int:
        """Estimate against the pending block (its timestamp is the one the transaction will see); nodes
        without pending-block estimates (eth-tester) are asked for the latest instead, once and for all."""
        if self._pending_estimates:
            try:
                return int(self.w3.eth.estimate_gas(cast(TxParams, tx), "pending"))
            except MethodUnavailable:
                self._pending_estimates = False
        return int(self.w3.eth.estimate_gas(cast(TxParams, tx)))

    def send(self, account: LocalAccount, params: Mapping[str, Any]) -> TxReceipt:
        """Allocate a nonce, sign and send a transaction, then wait for its receipt."""
        tx: dict[str, Any] = dict(params)
        tx.setdefault("chainId", self.chain_id)
        tx.setdefault("from", account.address)
        if "gas" not in tx:
            tx["gas"] = int(self.w3.eth.estimate_gas(cast(TxParams, tx)) * self.gas_multiplier)
        if "gasPrice" not in tx and "maxFeePerGas" not in tx:
            tx.update(self._fees())
        raw, tx_hash, nonce = self._send_with_nonce(account, tx)
        return self._wait(account, raw, tx_hash, nonce)

    def deploy(self, account: LocalAccount, artifact: Artifact, *args: Any) -> tuple[str, TxReceipt]:
        """Deploy ``artifact`` with constructor ``args``; returns (address, receipt)."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        built = factory.constructor(*args).build_transaction({"from": account.address, "chainId": self.chain_id})
        built.pop("nonce", None)
        built["gas"] = int(int(built["gas"]) * self.gas_multiplier)
        receipt = self.send(account, built)
        if receipt["status"] != 1 or not receipt.get("contractAddress"):
            raise errors.TransactionReverted(f"deployment of {artifact.name} failed")
        return str(receipt["contractAddress"]), receipt

    def transfer(self, account: LocalAccount, to: str, value: int) -> TxReceipt:
        """Plain ETH transfer (used to fund agent keys on local chains)."""
        return self.send(account, {"to": Web3.to_checksum_address(to), "value": value, "gas": 21_000})

    # --- internals ------------------------------------------------------------------------------------
    def _fees(self) -> dict[str, int]:
        """EIP-1559 fees from the latest base fee, cached for a second (one RPC less per send)."""
        now = time.monotonic()
        if self._fee_cache is not None and now - self._fee_cache[0] < 1.0:
            return dict(self._fee_cache[1])
        fees = self._fresh_fees()
        self._fee_cache = (now, fees)
        return dict(fees)

    def gas_price(self) -> int:
        """Wei per gas a transaction sent now is expected to pay (base fee + tip), from the cached fees."""
        fees = self._fees()
        if "gasPrice" in fees:
            return fees["gasPrice"]
        tip = fees["maxPriorityFeePerGas"]
        return (fees["maxFeePerGas"] - tip) // 2 + tip

    def _fresh_fees(self) -> dict[str, int]:
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        if base == 0 and "baseFeePerGas" not in block:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        tip = 1_000_000_000
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def _pending_count(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    def _send_with_nonce(self, account: LocalAccount, tx: dict[str, Any]) -> tuple[bytes, HexBytes, int]:
        address = account.address
        last_error: BaseException | None = None
        for _attempt in range(8):
            with self.nonces.locked(address):
                nonce = self._next_nonce(address)
                signed = account.sign_transaction({**tx, "nonce": nonce})
                try:
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except (Web3RPCError, ValueError) as exc:
                    text = _message(exc)
                    if any(s in text for s in _ALREADY_KNOWN):
                        pass  # our own bytes reached the node already: treat as sent
                    elif any(s in text for s in _NONCE_TOO_LOW + _UNDERPRICED):
                        log.info("nonce %s of %s is stale (%s); resyncing", nonce, address, text[:80])
                        self.nonces.forget(address)
                        last_error = exc
                        continue
                    else:
                        raise
                except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                    # The node may or may not have the transaction: ask before deciding.
                    if not self._known(signed.hash):
                        self.nonces.forget(address)
                        raise errors.NodeUnavailable(f"could not send transaction: {exc}") from exc
                self.nonces.advance(address, nonce + 1)
                return bytes(signed.raw_transaction), HexBytes(signed.hash), nonce
        raise errors.ChainError(f"no usable nonce for {address} after retries: {last_error}")

    def _next_nonce(self, address: str) -> int:
        """The node's pending count, checked against the shared counter (lock held).

        Every fleet sender advances the counter only after the node accepted its transaction, so counter
        and node agree unless something outside the fleet moved: another sender (node ahead: take the
        node's) or transactions that vanished (node behind: a reorg dropped them, a node restarted). A
        counter ahead of the node is a gap - nothing in the pool fills it, and every later transaction
        would queue behind it forever - so the node's count wins and the gap is logged."""
        node_next = self._pending_count(address)
        counter = self.nonces.peek(address, lambda: node_next)
        if counter > node_next:
            log.warning(
                "nonce gap for %s: counter %s, node pending %s; resyncing from the node", address, counter, node_next
            )
        return node_next

    def _fill_gap(self, account: LocalAccount, nonce: int) -> bool:
        """Our transaction at ``nonce`` waits behind missing nonces (dropped by a reorg or a node): send
        zero-value self-transfers for the missing ones so it can be mined. True when something was sent."""
        address = account.address
        with self.nonces.locked(address):
            pending = self._pending_count(address)
            if pending >= nonce:
                return False  # nothing missing below us (we are next, or already in line / mined)
            log.warning(
                "nonce gap for %s: node at %s, our transaction at %s; filling %s nonce(s)",
                address,
                pending,
                nonce,
                nonce - pending,
            )
            fees = self._fees()
            for missing in range(pending, nonce):
                filler: dict[str, Any] = {
                    "to": address,
                    "value": 0,
                    "gas": 21_000,
                    "chainId": self.chain_id,
                    "nonce": missing,
                    **fees,
                }
                try:
                    self.w3.eth.send_raw_transaction(account.sign_transaction(filler).raw_transaction)
                except (Web3RPCError, ValueError) as exc:  # filled meanwhile: fine
                    log.info("gap filler %s of %s not needed: %s", missing, address, _message(exc)[:80])
            self.nonces.forget(address)
            return True

    def _known(self, tx_hash: HexBytes) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
            return True
        except TransactionNotFound:
            return False

    def _wait(self, account: LocalAccount, raw: bytes, tx_hash: HexBytes, nonce: int) -> TxReceipt:
        """Wait for the receipt; every few seconds check that the transaction can still be mined (a gap
        below it is filled, a dropped one re-broadcast once); detect replacement."""
        address = account.address
        resent = False
        deadline = time.monotonic() + self.tx_timeout
        next_check = time.monotonic() + self.gap_check_interval
        while True:
            try:
                return self.w3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                pass
            now = time.monotonic()
            if now >= next_check:
                next_check = now + self.gap_check_interval
                mined_nonce = int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "latest"))
                if mined_nonce > nonce and not self._receipt(tx_hash):
                    raise errors.TransactionReplaced(f"nonce {nonce} of {address} used by another transaction")
                if not self._known(tx_hash):
                    if resent:
                        raise errors.TransactionDropped(f"transaction {tx_hash.to_0x_hex()} dropped twice")
                    log.warning("transaction %s dropped; re-broadcasting", tx_hash.to_0x_hex())
                    try:
                        self.w3.eth.send_raw_transaction(raw)
                    except (Web3RPCError, ValueError) as exc:
                        log.info("re-broadcast of %s refused: %s", tx_hash.to_0x_hex(), _message(exc)[:80])
                    resent = True
                self._fill_gap(account, nonce)
            if now >= deadline:
                raise errors.TransactionTimeout(f"transaction {tx_hash.to_0x_hex()} not mined in {self.tx_timeout} s")
            time.sleep(self.poll_interval)

    def _receipt(self, tx_hash: HexBytes) -> bool:
        try:
            self.w3.eth.get_transaction_receipt(tx_hash)
            return True
        except TransactionNotFound:
            return False

    def _explain_failure(
        self, account: LocalAccount, fn: ContractFunction, value: int, receipt: TxReceipt
    ) -> errors.ChainError:
        """Replay a failed transaction as a call to recover the named error.

        First at its own block (the state after it: a transaction that lost a race in the same block, e.g.
        two keepers finalizing, reverts there with the winner's effect in place - AlreadyFinalized), then
        at the block before (a revert caused by the transaction's own inputs)."""
        params = cast(TxParams, {"from": account.address, "value": value})
        for block in (receipt["blockNumber"], receipt["blockNumber"] - 1):
            try:
                fn.call(params, block_identifier=block)
            except Exception as exc:
                if errors.is_revert(exc):
                    return errors.translate(exc)
        return errors.TransactionReverted(f"transaction {receipt['transactionHash'].to_0x_hex()} reverted")
