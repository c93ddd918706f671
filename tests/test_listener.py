"""The chain listener against a real anvil and a real redis-server: backfill, order, routing, reorgs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from agentfleet.bidding.closing import close_auction
from agentfleet.bidding.market import RedisMarket
from agentfleet.bidding.sealed import BidBook
from agentfleet.chain.artifacts import Deployment
from agentfleet.chain.local import advance_time, mine
from agentfleet.chain.market import TaskSpec, content_hash, post_task
from agentfleet.chain.session import ChainSession, capability_weights
from agentfleet.content import TaskTexts
from agentfleet.directory import AgentDirectory, FleetAgent
from agentfleet.protocol import inbox, keys, routing
from agentfleet.protocol.inbox import clearing_done_id, outcome_done_id
from agentfleet.protocol.status import AuctionMode
from agentfleet.settings import Settings
from chain_listener.listener import Listener
from shell.services import RedisServer
from testkit.chain import ETH, create_task, deployed_market, now, sealed_bid
from testkit.listener import add_fleet_agents, celery_app, emit_tasks, queued, stream
from testkit.wait import wait_until

pytestmark = pytest.mark.anvil
RESEARCH = routing.agent_queue("research")
ANALYTICS = routing.agent_queue("analytics")


@pytest.fixture
def market(tmp_path: Path) -> Iterator[ChainSession]:
    with deployed_market("anvil", tmp_path) as session:
        yield session


def make_listener(
    session: ChainSession, server: RedisServer, *, confirmations: int = 0, batch: int = 100, **overrides: object
) -> Listener:
    settings = Settings(
        rpc_urls=[session.client.w3.provider.endpoint_uri],  # type: ignore[attr-defined]
        confirmations=confirmations,
        listener_batch_blocks=batch,
        contract_addresses_path=session.settings.contract_addresses_path,
        **overrides,  # type: ignore[arg-type]
    )
    client = redis.Redis.from_url(server.url)
    return Listener.build(settings, app=celery_app(server.url), redis_client=client)


def drain(listener: Listener, max_steps: int = 10_000) -> None:
    """Step until the listener has nothing left to read."""
    for _ in range(max_steps):
        result = listener.step()
        if not result.advanced and not result.retried and not result.reorg_depth:
            return
    raise AssertionError("listener did not catch up")


def test_backfill_of_1000_events_dispatches_each_exactly_once(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    add_fleet_agents(market, redis_client, ["research"])
    hashes = emit_tasks(market, 1000)  # the listener is not running yet

    listener = make_listener(market, redis_server, batch=50)
    drain(listener)

    work = queued(redis_client, RESEARCH)
    assert len(work) == 1000
    assert len({w["id"] for w in work}) == 1000
    assert [w["kwargs"]["task_id"] for w in work] == list(range(1, 1001))  # chain order
    created = [e for e in stream(redis_client) if e.get("name") == "TaskCreated"]
    assert [e["id"].split(":")[0] for e in created] == hashes
    drain(make_listener(market, redis_server, batch=50))  # a second listener (a restart) adds nothing
    assert len(queued(redis_client, RESEARCH)) == 1000


def test_task_life_routes_work_to_the_right_queues_in_order(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research", "development", "analytics"])
    listener = make_listener(s, redis_server)
    task_id = create_task(s, tags=["research"])  # agents 0 and 2 have the research capability
    drain(listener)
    assert [w["kwargs"]["agents"] for w in queued(redis_client, RESEARCH)] == [[s.agent(0).address]]
    assert [w["kwargs"]["agents"] for w in queued(redis_client, ANALYTICS)] == [[s.agent(2).address]]
    assert queued(redis_client, routing.agent_queue("development")) == []

    s.auction.place_bid(s.agent(0), task_id, ETH // 2)
    s.auction.place_bid(s.agent(2), task_id, ETH // 3)
    advance_time(s.client.w3, 301)
    s.auction.finalize(s.requester, task_id)
    s.tasks.submit_result(s.agent(2), task_id, b"\x01" * 32, "sha256:01")
    s.tasks.complete_task(s.evaluator, task_id, 80)
    drain(listener)

    execute = [w for w in queued(redis_client, ANALYTICS) if w["task"] == routing.EXECUTE]
    assert [w["kwargs"]["agent"] for w in execute] == [s.agent(2).address]
    assert [w["kwargs"]["task_id"] for w in queued(redis_client, routing.EVALUATION)] == [task_id]
    training = queued(redis_client, routing.TRAINING)
    outcomes = {
        (w["kwargs"]["agent"].lower(), w["kwargs"]["outcome"]) for w in training if w["task"] == routing.RECORD_OUTCOME
    }
    assert [w["kwargs"]["task_id"] for w in training if w["task"] == routing.RECORD_CLEARING] == [task_id]  # the price
    assert outcomes == {(s.agent(0).address.lower(), "lost"), (s.agent(2).address.lower(), "won")}
    # every training message waits in the trainer's inbox until the trainer settles it (none ran here)
    letters = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(inbox.LETTERS).items()}
    assert set(letters) == {outcome_done_id(task_id, a) for a, _ in outcomes} | {
        clearing_done_id(w["kwargs"]["event"]["id"]) for w in training if w["task"] == routing.RECORD_CLEARING
    }
    assert {
        (v["kwargs"]["agent"].lower(), v["kwargs"]["outcome"]) for v in letters.values() if "agent" in v["kwargs"]
    } == outcomes
    names = [e["name"] for e in stream(redis_client) if e.get("name") and '"taskId": 1' in e["event"]]
    assert names == [
        "TaskCreated",
        "BidPlaced",
        "BidPlaced",
        "TaskAssigned",
        "AuctionFinalized",
        "ResultSubmitted",
        "Settled",
        "TaskCompleted",
    ]
    # The directory follows the registry's events: workers read weights and reputation there, not the chain.
    for number in (0, 2):
        chain_agent = s.registry.get_agent(s.agent(number).address)
        member = AgentDirectory(redis_client).get(s.agent(number).address)
        assert member is not None
        assert member.standing() == (capability_weights(chain_agent), chain_agent.reputation)
    assert AgentDirectory(redis_client).get(s.agent(2).address).reputation != 50  # moved by the completion
    # Every agent's reputation now, in or out of the fleet: what the market's prices are re-weighted with.
    s.registry.register(s.agent(3), "outsider", ["research"], [50])  # a rival this fleet does not run
    drain(listener)
    everyone = [s.agent(n).address for n in range(4)]
    assert RedisMarket(redis_client).reputations(everyone) == {
        a.lower(): s.registry.get_agent(a).reputation for a in everyone
    }


def test_a_new_task_is_one_consider_message_per_profile_batch_not_per_agent(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    directory = AgentDirectory(redis_client)
    for number in range(1, 41):  # 40 more research agents of this fleet (directory entries are enough here)
        directory.put(FleetAgent(f"0x{number:040x}", f"R{number}", "research", ["research"], weights=[60]))
    listener = make_listener(s, redis_server, consider_batch=16)
    task_id = create_task(s, tags=["research"])
    drain(listener)
    work = queued(redis_client, RESEARCH)
    assert [len(w["kwargs"]["agents"]) for w in work] == [16, 16, 9]
    members = [a.lower() for w in work for a in w["kwargs"]["agents"]]
    assert len(members) == len(set(members)) == 41
    assert {w["kwargs"]["task_id"] for w in work} == {task_id}
    assert all(w["kwargs"]["event"]["name"] == "TaskCreated" for w in work)  # the worker reads the terms there
    drain(make_listener(s, redis_server, consider_batch=16))  # a restart adds nothing
    assert len(queued(redis_client, RESEARCH)) == 3


def test_sealed_task_life_keeps_the_text_and_routes_outcomes_from_the_bid_book(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research", "development", "analytics"])
    listener = make_listener(s, redis_server)
    text = "Compare three consensus protocols (sealed auction)"
    task_id = create_task(s, tags=["research"], mode=AuctionMode.SEALED, text=text)
    drain(listener)
    texts = TaskTexts(redis_client)
    assert texts.of_task(task_id) == text  # the event's text, checked against its hash, in the content store
    book = BidBook(redis_client)
    for number, amount in ((0, ETH // 2), (2, ETH // 3)):
        book.publish(sealed_bid(s, number, task_id, amount))
    advance_time(s.client.w3, 301)
    closing = close_auction(s, book, task_id, caller=s.requester, now=now(s))
    assert (closing.status, closing.bids) == ("finalized", 2)
    drain(listener)
    training = queued(redis_client, routing.TRAINING)
    outcomes = {
        (w["kwargs"]["agent"].lower(), w["kwargs"]["outcome"]) for w in training if w["task"] == routing.RECORD_OUTCOME
    }
    assert [w["kwargs"]["task_id"] for w in training if w["task"] == routing.RECORD_CLEARING] == [task_id]  # the price
    assert outcomes == {(s.agent(0).address.lower(), "lost")}  # the loser, known from the book; no BidPlaced
    execute = [w for w in queued(redis_client, ANALYTICS) if w["task"] == routing.EXECUTE]
    assert [w["kwargs"]["agent"] for w in execute] == [s.agent(2).address]
    names = [e["name"] for e in stream(redis_client) if e.get("name") and f'"taskId": {task_id}' in e["event"]]
    assert names == ["TaskCreated", "TaskAssigned", "AuctionFinalized"]  # losing bidders sent nothing


def test_a_task_published_by_uri_only_is_remembered_by_hash_and_refused_text(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    listener = make_listener(s, redis_server)
    text = "The text lives elsewhere"
    spec = TaskSpec(
        text,
        ("research",),
        ETH,
        now(s) + 300,
        3600,
        s.evaluator.address,
        content_uri="ipfs://example",
        publish_text=False,
    )
    task_id = post_task(s, s.requester, spec)
    drain(listener)
    texts = TaskTexts(redis_client)
    assert texts.digest_of(task_id) == content_hash(text) and texts.of_task(task_id) is None
    texts.put(text)  # the requester's copy arrives in the store: now it reads back, verified
    assert texts.of_task(task_id) == text
    redis_client.set(keys.task_text(content_hash(text).hex()), "tampered")
    assert texts.of_task(task_id) is None  # never trusted when it does not match


def snapshot(session: ChainSession) -> str:
    return str(session.client.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(session: ChainSession, snap: str) -> None:
    session.client.w3.provider.make_request("evm_revert", [snap])  # type: ignore[arg-type]
    session.client.nonces.forget(session.requester.address)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_reorg_within_confirmations_never_dispatches_orphaned_events(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis, depth: int
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    listener = make_listener(s, redis_server, confirmations=depth)
    drain(listener)
    snap = snapshot(s)
    orphaned = emit_tasks(s, depth)  # `depth` blocks, each with a TaskCreated
    drain(listener)  # they are not confirmed yet: nothing dispatched
    revert(s, snap)
    kept = emit_tasks(s, depth, tags=["research", "writing"])
    mine(s.client.w3, depth + 1)
    drain(listener)

    ids = {e["id"].split(":")[0] for e in stream(redis_client)}
    assert not ids & set(orphaned)
    assert set(kept) <= ids
    assert len(queued(redis_client, RESEARCH)) == depth


@pytest.mark.parametrize("method", ["snapshot", "anvil_reorg"])
def test_reorg_deeper_than_confirmations_reports_orphaned_events_reverted(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis, method: str
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    listener = make_listener(s, redis_server, confirmations=0)
    drain(listener)
    snap = snapshot(s)
    orphaned = emit_tasks(s, 2)
    drain(listener)  # confirmations 0: dispatched at once
    assert len(queued(redis_client, RESEARCH)) == 2
    if method == "snapshot":
        revert(s, snap)
        mine(s.client.w3, 3)
    else:
        s.client.w3.provider.make_request("anvil_reorg", [2, []])  # type: ignore[arg-type]
        s.client.nonces.forget(s.requester.address)
    kept = emit_tasks(s, 1)
    drain(listener)

    reverted = {e["id"] for e in stream(redis_client) if e.get("status") == "reverted"}
    assert {h.split(":")[0] for h in reverted} >= set(orphaned) - set(kept)
    for entry in reverted:
        assert redis_client.exists(keys.reverted(entry))
    assert kept[0] in {e["id"].split(":")[0] for e in stream(redis_client) if e.get("status") == "confirmed"}
    assert listener.metrics.reorgs.labels(kind="deep")._value.get() >= 1


def test_malformed_and_unknown_logs_are_skipped_with_a_reason(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    listener = make_listener(market, redis_server)
    deployment = Deployment.load(market.settings.contract_addresses_path)
    good = {
        "address": deployment.contracts["ActionLogger"],
        "topics": [b"\x00" * 32],
        "data": b"",
        "blockNumber": 5,
        "logIndex": 0,
        "transactionHash": b"\x01" * 32,
        "blockHash": b"\x02" * 32,
        "transactionIndex": 0,
    }
    bad_logs = [
        {**good, "topics": []},
        good,  # unknown topic
        {**good, "address": "0x" + "12" * 20},
        {"address": deployment.contracts["ActionLogger"]},  # missing fields
    ]
    assert listener.dispatcher.handle(bad_logs) == {}  # type: ignore[arg-type]
    skipped = listener.metrics.skipped
    assert skipped.labels(reason="anonymous")._value.get() == 1
    assert skipped.labels(reason="unknown_topic")._value.get() == 1
    assert skipped.labels(reason="unknown_address")._value.get() == 1
    assert skipped.labels(reason="malformed")._value.get() == 1
    assert stream(redis_client) == []


def test_indexed_topics_decode_as_strictly_as_eth_abi() -> None:
    """Topics are decoded by hand on the backfill path: the same values as eth_abi, the same refusals."""
    from eth_abi import encode
    from eth_utils import event_abi_to_log_topic

    from agentfleet.chain.artifacts import load_artifact
    from chain_listener.events import EventDecoder, UndecodableLog

    address = "0x" + "ab" * 20
    decoder = EventDecoder({"TaskManager": address})
    abi = next(i for i in load_artifact("TaskManager").abi if i.get("name") == "TaskAssigned")
    agent = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
    log = {
        "address": address,
        "topics": [event_abi_to_log_topic(abi), (7).to_bytes(32, "big"), bytes(12) + bytes.fromhex(agent[2:])],
        "data": encode(["uint256", "uint64"], [5, 9]),
        "blockNumber": 5,
        "logIndex": 0,
        "transactionHash": b"\x01" * 32,
        "blockHash": b"\x02" * 32,
    }
    event = decoder.decode(log)  # type: ignore[arg-type]
    assert event.args == {"taskId": 7, "agent": agent, "price": 5, "executionDeadline": 9}
    dirty = {**log, "topics": [log["topics"][0], log["topics"][1], b"\x01" + log["topics"][2][1:]]}
    with pytest.raises(UndecodableLog, match="bad_data"):
        decoder.decode(dirty)  # type: ignore[arg-type]
    short = {**log, "topics": [log["topics"][0], b"\x07", log["topics"][2]]}
    with pytest.raises(UndecodableLog, match="bad_data"):
        decoder.decode(short)  # type: ignore[arg-type]


def test_websocket_new_heads_wake_the_listener_at_once(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    import threading
    import time

    add_fleet_agents(market, redis_client, ["research"])
    listener = make_listener(market, redis_server)
    listener.poll_interval = 30.0  # without the socket, a new block would wait this long
    listener.ws_url = market.client.w3.provider.endpoint_uri.replace("http", "ws")  # type: ignore[attr-defined]
    drain(listener)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # subscription established
        started = time.monotonic()
        emit_tasks(market, 1, wait=False)
        wait_until(lambda: redis_client.llen(RESEARCH) > 0, 10, "the new task was not dispatched", interval=0.005)
        elapsed = time.monotonic() - started
    finally:
        listener.stop()
        thread.join(timeout=10)
    assert redis_client.llen(RESEARCH) == 1
    assert elapsed < 3.0, f"took {elapsed:.2f} s: the socket did not wake the listener"
    assert not thread.is_alive()


def test_chain_rolled_back_below_the_checkpoint_is_a_reorg_not_a_stall(
    market: ChainSession, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    s = market
    add_fleet_agents(s, redis_client, ["research"])
    listener = make_listener(s, redis_server, confirmations=0)
    drain(listener)
    snap = snapshot(s)
    orphaned = emit_tasks(s, 3)
    drain(listener)
    revert(s, snap)  # the head is now below the checkpoint, and nothing new is mined
    result = listener.step()
    assert result.reorg_depth == 3
    reverted = {e["id"].split(":")[0] for e in stream(redis_client) if e.get("status") == "reverted"}
    assert reverted == set(orphaned)


def test_rpc_urls_with_keys_never_reach_logs(caplog: pytest.LogCaptureFixture) -> None:
    from chain_listener.rpc import RpcPool, RpcUnavailable

    secret_url = "http://127.0.0.1:9/v3/secret-api-key-123"
    pool = RpcPool([secret_url], timeout=0.2, backoff_initial=0.001, attempts=2)
    with pytest.raises(RpcUnavailable):
        pool.call(lambda w3: w3.eth.block_number)
    assert caplog.records and "secret-api-key-123" not in caplog.text
