"""The deployer: wiring, the deployment record, and reuse instead of a second deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfleet.chain import bindings as b
from agentfleet.chain.artifacts import CONTRACT_NAMES, Deployment
from agentfleet.chain.deploy import deploy_all
from testkit.chain import deployed_market


def test_record_is_written_and_rerun_reuses_it(tmp_path: Path) -> None:
    with deployed_market("inprocess", tmp_path, register=0) as s:
        path = s.settings.contract_addresses_path
        record = Deployment.load(path)
        assert set(record.contracts) == set(CONTRACT_NAMES)
        assert record.chain_id == s.client.chain_id and record.deployer == s.deployer.address
        block_before = s.client.w3.eth.block_number

        again = deploy_all(s.client, s.deployer, record_path=path)

        assert again == record
        assert s.client.w3.eth.block_number == block_before  # nothing was sent
        fresh = deploy_all(s.client, s.deployer, record_path=path, reuse=False)
        assert fresh.contracts != record.contracts


def test_stale_or_corrupt_record_leads_to_a_new_deployment(tmp_path: Path) -> None:
    with deployed_market("inprocess", tmp_path, register=0) as s:
        path = s.settings.contract_addresses_path
        data = json.loads(path.read_text())
        data["artifactHashes"]["TaskManager"] = "0" * 64  # code changed since
        path.write_text(json.dumps(data))
        assert deploy_all(s.client, s.deployer, record_path=path).contracts != data["contracts"]
        path.write_text("{not json")
        assert deploy_all(s.client, s.deployer, record_path=path).chain_id == s.client.chain_id


def test_wiring_is_one_time_only(tmp_path: Path) -> None:
    with deployed_market("inprocess", tmp_path, register=0) as s:
        with pytest.raises(b.AlreadyWired):
            s.tasks.set_auction(s.deployer, s.deployer.address)
        with pytest.raises(b.NotOwner):
            s.registry.set_incentive_engine(
                s.requester if s.requester != s.deployer else s.agent(0), s.agent(0).address
            )
