"""The committed artifacts and bindings are exactly what the pinned compiler and generator produce."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

from agentfleet.chain import codegen
from agentfleet.chain.artifacts import ARTIFACTS_DIR, CONTRACT_NAMES, load_artifact

ROOT = Path(__file__).resolve().parent.parent


def test_recompiling_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    subprocess.run(["node", str(ROOT / "contracts" / "compile.mjs"), "--out", str(tmp_path)], check=True, timeout=120)
    for name in CONTRACT_NAMES:
        assert filecmp.cmp(tmp_path / f"{name}.json", ARTIFACTS_DIR / f"{name}.json", shallow=False), name


def test_artifacts_target_prague_and_have_code() -> None:
    for name in CONTRACT_NAMES:
        artifact = load_artifact(name)
        assert len(artifact.bytecode) > 100 and artifact.deployed_bytecode.startswith("0x")
        assert any(item["type"] == "error" for item in artifact.abi) or name == "TaskMarketplace"
    assert 'evmVersion: "prague"' in (ROOT / "contracts" / "compile.mjs").read_text()


def test_bindings_are_up_to_date() -> None:
    assert codegen.main(["--check"]) == 0


def test_every_custom_error_has_a_python_class() -> None:
    from agentfleet.chain import bindings

    for name in CONTRACT_NAMES:
        for item in load_artifact(name).abi:
            if item["type"] == "error":
                cls = getattr(bindings, item["name"])
                assert issubclass(cls, bindings.ContractRevert)


def test_committed_deployment_record_matches_the_artifacts() -> None:
    """contract_addresses.json (the default anvil deployment) names the code that is compiled now."""
    from agentfleet.chain.artifacts import Deployment

    record = Deployment.load(ROOT / "contract_addresses.json")
    assert record.chain_id == 31337 and set(record.contracts) == set(CONTRACT_NAMES)
    assert record.artifact_hashes == {name: load_artifact(name).code_hash for name in CONTRACT_NAMES}
