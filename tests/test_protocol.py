"""The protocol module is the one definition: checked against the contracts and the registered tasks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.chain.market import content_hash, tag_id, tag_text
from agentfleet.profiles import AGENT_TYPES
from agentfleet.protocol import limits, routing
from agentfleet.protocol.status import FINAL_STATUSES, AuctionMode, TaskStatus

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"


def test_task_status_matches_the_solidity_enum_and_the_abi() -> None:
    source = (CONTRACTS / "src" / "Common.sol").read_text()
    names = re.search(r"enum Status \{([^}]*)\}", source)
    assert names is not None
    solidity = [name.strip().upper() for name in names.group(1).split(",")]
    assert [s.name for s in TaskStatus] == solidity
    assert [int(s) for s in TaskStatus] == list(range(len(solidity)))
    abi = json.loads((CONTRACTS / "artifacts" / "TaskManager.json").read_text())["abi"]
    status_of = next(item for item in abi if item.get("name") == "statusOf")
    assert status_of["outputs"][0]["internalType"] == "enum ITaskManager.Status"
    assert {s.name for s in FINAL_STATUSES} == {"COMPLETED", "FAILED", "CANCELLED", "EXPIRED"}


def test_limits_match_the_contracts() -> None:
    source = (CONTRACTS / "src" / "Common.sol").read_text()
    declared = dict(re.findall(r"constant (\w+) = (\d+);", source))
    assert declared, "no constants found in Common.sol"
    for name, value in declared.items():
        assert getattr(limits, name) == int(value), name
    engine = (CONTRACTS / "src" / "IncentiveEngine.sol").read_text()
    assert f"(score - Limits.PASS_SCORE) / {limits.REPUTATION_STEP}" in engine


def test_queues_come_from_the_profiles_and_every_task_name_is_registered() -> None:
    import importlib

    from agentfleet.protocol.app import app

    for module in routing.TASK_MODULES:
        importlib.import_module(module)

    assert tuple(routing.agent_queue(p) for p in dict.fromkeys(a.queue for a in AGENT_TYPES)) == routing.AGENT_QUEUES
    assert all(q.startswith("agent.") and q.count(".") == 1 for q in routing.AGENT_QUEUES)
    names = {value for key, value in vars(routing).items() if key.isupper() and isinstance(value, str)}
    task_names = {n for n in names if "." in n and n not in routing.ALL_QUEUES}
    assert task_names == {
        routing.CONSIDER,
        routing.EXECUTE,
        routing.EVALUATE,
        routing.DELIVER,
        routing.FINALIZE_DUE,
        routing.FINALIZE,
        routing.EXPIRE,
        routing.RECONCILE,
        routing.RECORD_OUTCOME,
        routing.RECORD_CLEARING,
    }
    assert task_names <= set(app.tasks), task_names - set(app.tasks)
    assert {route["queue"] for route in routing.ROUTES.values()} <= set(routing.ALL_QUEUES)
    assert set(app.conf.task_routes) <= task_names


def test_auction_mode_matches_the_solidity_enum_and_the_abi() -> None:
    source = (CONTRACTS / "src" / "Common.sol").read_text()
    names = re.search(r"enum Mode \{([^}]*)\}", source)
    assert names is not None
    assert [m.name for m in AuctionMode] == [name.strip().upper() for name in names.group(1).split(",")]
    abi = json.loads((CONTRACTS / "artifacts" / "TaskManager.json").read_text())["abi"]
    create = next(item for item in abi if item.get("name") == "createTask")
    assert create["inputs"][-1]["internalType"] == "enum ITaskManager.Mode"


@given(st.text(min_size=1).filter(lambda t: 0 < len(t.encode()) <= 32 and not t.startswith("\0")))
def test_tag_ids_read_back_as_their_text(text: str) -> None:
    tag = tag_id(text)
    assert len(tag) == 32 and tag_text(tag) == text.rstrip("\0") and tag_text("0x" + tag.hex()) == text.rstrip("\0")


def test_bad_tags_are_refused_before_any_transaction() -> None:
    for bad in ("", "x" * 33, "é" * 17, "\0lead"):
        with pytest.raises(ValueError):
            tag_id(bad)
    from web3 import Web3

    assert content_hash("text") == bytes(Web3.keccak(b"text"))
