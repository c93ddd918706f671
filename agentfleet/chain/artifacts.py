"""Compiled contract artifacts (``contracts/artifacts/*.json``) and the deployment record.

Why committed artifacts: workers and the listener need ABIs at run time without a compiler, and the
artifact hash in ``contract_addresses.json`` lets the deployer recognise a chain that already runs
exactly this code (see :mod:`agentfleet.chain.deploy`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentfleet.settings import PROJECT_ROOT

ARTIFACTS_DIR = PROJECT_ROOT / "contracts" / "artifacts"

# Deployment order: each contract's constructor takes addresses of contracts before it.
CONTRACT_NAMES: tuple[str, ...] = (
    "AgentRegistry",
    "TaskManager",
    "BidAuction",
    "IncentiveEngine",
    "TaskMarketplace",
    "MessageHub",
    "ActionLogger",
)


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str

    @property
    def code_hash(self) -> str:
        """sha256 of the runtime bytecode: equal hashes mean the same code is deployed."""
        return hashlib.sha256(bytes.fromhex(self.deployed_bytecode.removeprefix("0x"))).hexdigest()


@lru_cache(maxsize=32)
def load_artifact(name: str, directory: Path = ARTIFACTS_DIR) -> Artifact:
    path = directory / f"{name}.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"artifact {path} missing: run `node contracts/compile.mjs`") from exc
    return Artifact(name=name, abi=raw["abi"], bytecode=raw["bytecode"], deployed_bytecode=raw["deployedBytecode"])


def load_all(directory: Path = ARTIFACTS_DIR) -> dict[str, Artifact]:
    return {name: load_artifact(name, directory) for name in CONTRACT_NAMES}


class Deployment(BaseModel):
    """What ``contract_addresses.json`` holds: where the contracts live and which code they run."""

    chain_id: int = Field(alias="chainId")
    deployment_block: int = Field(alias="deploymentBlock", ge=0)
    deployer: str
    contracts: dict[str, str]
    artifact_hashes: dict[str, str] = Field(alias="artifactHashes")

    model_config = {"populate_by_name": True}

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError as exc:
            raise KeyError(f"{name} is not in the deployment record") from exc

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename) so a reader never sees half a record."""
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{path} not found: deploy first (`agentfleet deploy`)") from exc
