"""Deploy and wire the seven contracts, and record them in ``contract_addresses.json``.

Why reuse: the deployer runs as a one-shot service on every ``docker compose up`` and before every demo.
If the record names this chain, its artifact hashes equal the compiled ones and code is present at every
address, the existing deployment is returned instead of deploying a second, empty marketplace.
"""

from __future__ import annotations

import logging
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from agentfleet.chain.artifacts import CONTRACT_NAMES, Deployment, load_all
from agentfleet.chain.client import ChainClient

log = logging.getLogger(__name__)

# Constructor arguments, by the names of contracts deployed before (see CONTRACT_NAMES for the order).
CONSTRUCTOR_ARGS: dict[str, tuple[str, ...]] = {
    "AgentRegistry": (),
    "TaskManager": ("AgentRegistry",),
    "BidAuction": ("AgentRegistry", "TaskManager"),
    "IncentiveEngine": ("AgentRegistry", "TaskManager"),
    "TaskMarketplace": ("TaskManager",),
    "MessageHub": ("AgentRegistry",),
    "ActionLogger": ("AgentRegistry",),
}

# One-time owner calls that connect the contracts: (contract, function, argument contract).
WIRING: tuple[tuple[str, str, str], ...] = (
    ("TaskManager", "setAuction", "BidAuction"),
    ("TaskManager", "setIncentiveEngine", "IncentiveEngine"),
    ("AgentRegistry", "setIncentiveEngine", "IncentiveEngine"),
)


def existing_deployment(client: ChainClient, path: Path) -> Deployment | None:
    """The recorded deployment if it is live on this chain with exactly the compiled code, else None."""
    if not path.exists():
        return None
    try:
        record = Deployment.load(path)
    except ValueError as exc:
        log.warning("ignoring unreadable deployment record %s: %s", path, exc)
        return None
    artifacts = load_all()
    if record.chain_id != client.chain_id:
        return None
    if record.artifact_hashes != {name: a.code_hash for name, a in artifacts.items()}:
        return None
    for name in CONTRACT_NAMES:
        address = record.contracts.get(name)
        if not address or not client.w3.eth.get_code(Web3.to_checksum_address(address)):
            return None
    return record


def deploy_all(
    client: ChainClient, deployer: LocalAccount, *, record_path: Path | None, reuse: bool = True
) -> Deployment:
    """Deploy (or reuse) the whole set, wire it, write the record, and point ``client`` at it."""
    if reuse and record_path is not None:
        found = existing_deployment(client, record_path)
        if found is not None:
            log.info("reusing deployment from block %s (%s)", found.deployment_block, record_path)
            client.use_deployment(found)
            return found
    artifacts = load_all()
    addresses: dict[str, str] = {}
    first_block: int | None = None
    for name in CONTRACT_NAMES:
        args = [addresses[dep] for dep in CONSTRUCTOR_ARGS[name]]
        address, receipt = client.deploy(deployer, artifacts[name], *args)
        addresses[name] = address
        first_block = receipt["blockNumber"] if first_block is None else first_block
        log.info("deployed %s at %s", name, address)
    for target, function, argument in WIRING:
        contract = client.contract(target, addresses[target])
        client.transact(deployer, contract.functions[function](addresses[argument]))
    record = Deployment(
        chainId=client.chain_id,
        deploymentBlock=int(first_block or 0),
        deployer=deployer.address,
        contracts=addresses,
        artifactHashes={name: a.code_hash for name, a in artifacts.items()},
    )
    if record_path is not None:
        record.save(record_path)
    client.use_deployment(record)
    return record
