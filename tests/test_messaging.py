"""Agent messages through MessageHub: sealed to the recipient's key on chain, delivered by the fleet,
read back by the CLI; what cannot be opened is reported, never dropped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfleet.chain.keys import derive_account
from agentfleet.messaging import (
    MAX_TEXT_BYTES,
    MessagingError,
    open_payload,
    public_key,
    publish_key,
    read_chain,
    seal,
    send,
)
from agentfleet.protocol import keys
from shell.services import RedisServer
from testkit.chain import deployed_market, fleet_env
from testkit.fleet import pump, running_fleet

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "shell.cli"]


def test_sealed_on_chain_opened_only_by_the_recipient(tmp_path: Path) -> None:
    with deployed_market("inprocess", tmp_path, register=3) as s:
        alice, bob, carol = s.agent(0), s.agent(1), s.agent(2)
        assert publish_key(s, alice) and publish_key(s, bob)
        assert not publish_key(s, bob)  # already there: no second transaction
        secret = "meet at task 7: the reviewer is strict about citations"
        message_id = send(s, alice, bob.address, secret, topic="coordination", task_id=7)

        payload = bytes(s.messages.contract.events.MessageSent().get_logs(from_block=0)[0]["args"]["payload"])
        assert secret.encode() not in payload  # the chain carries ciphertext only
        with pytest.raises(ValueError, match="cannot decrypt"):
            open_payload(alice, payload)  # the sender's own key does not open it
        [message] = read_chain(s, bob)
        assert (message.message_id, message.sender, message.topic, message.task_id, message.text) == (
            message_id,
            alice.address,
            "coordination",
            7,
            secret,
        )
        assert read_chain(s, carol) == []


def test_bad_sends_are_refused_and_bad_payloads_reported(tmp_path: Path) -> None:
    with deployed_market("inprocess", tmp_path, register=3) as s:
        alice, bob, carol = s.agent(0), s.agent(1), s.agent(2)
        publish_key(s, bob)
        with pytest.raises(MessagingError, match="published no encryption key"):
            send(s, bob, carol.address, "hello")  # carol never published a key
        with pytest.raises(MessagingError, match="at most"):
            send(s, alice, bob.address, "x" * (MAX_TEXT_BYTES + 1))
        with pytest.raises(MessagingError, match="not a registered agent"):
            send(s, alice, s.requester.address, "hello")
        with pytest.raises(MessagingError, match=r"sender .* is not a registered agent"):
            send(s, s.agent(5), bob.address, "hello")
        with pytest.raises(MessagingError, match="not an address"):
            send(s, alice, "bob", "hello")
        with pytest.raises(MessagingError, match="empty"):
            send(s, alice, bob.address, "")
        assert s.messages.message_count() == 0  # nothing was sent by the refused calls

        send(s, alice, bob.address, "first")
        s.messages.send_message(alice, bob.address, "raw", b"plain text anyone can read", 0)  # not sealed
        sealed = bytearray(s.messages.contract.events.MessageSent().get_logs(from_block=0)[0]["args"]["payload"])
        sealed[-1] ^= 1  # one flipped bit: the GCM tag no longer matches
        s.messages.send_message(alice, bob.address, "tampered", bytes(sealed), 0)
        send(s, alice, bob.address, "last")
        messages = read_chain(s, bob)
        assert [m.text for m in messages] == ["first", None, None, "last"]
        assert all("cannot decrypt" in (m.error or "") for m in messages[1:3])


@pytest.mark.anvil
def test_fleet_delivers_to_the_inbox_and_the_cli_sends_and_reads(tmp_path: Path, redis_server: RedisServer) -> None:
    with running_fleet(tmp_path, redis_server) as (s, listener, client):
        env = fleet_env(s, redis_server.url)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

        sent = cli(
            "message",
            "send",
            "0",
            "1",
            "can you review my solidity? [bold]really[/bold]",
            "--topic",
            "review",
            "--task",
            "3",
        )
        assert sent.returncode == 0, sent.stderr
        assert "message 1 sent" in sent.stdout
        inbox = keys.inbox(s.agent(1).address)
        pump(listener, lambda: client.llen(inbox) == 1)  # listener -> recipient's queue -> deliver_message
        assert b"can you review" not in redis.Redis.from_url(redis_server.url).lindex(inbox, 0)  # type: ignore[operator]

        read = cli("message", "read", "1")
        assert read.returncode == 0, read.stderr
        assert "can you review my solidity? [bold]really[/bold]" in read.stdout  # shown as sent, not as markup
        assert "can you review" not in cli("message", "read", "2").stdout  # not delivered to anyone else

        bad = cli("message", "send", "zero", "1", "hi")
        assert bad.returncode == 2 and "agent's number" in bad.stderr
        assert cli("message", "read", "1", "--source", "mempool").returncode == 2
        unregistered = cli("message", "send", "7", "1", "hi")
        assert unregistered.returncode == 1 and "not a registered agent" in unregistered.stdout
        env["AGENTFLEET_REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens there
        down = cli("message", "read", "1")
        assert down.returncode == 1 and "try --source chain" in down.stdout, down.stderr[-2000:]
        with_chain = cli("message", "read", "1", "--source", "chain")
        assert "can you review my solidity?" in with_chain.stdout


def test_a_payload_whose_key_prefix_was_flipped_is_refused() -> None:
    """0x04 -> 0x06/0x07 is the same point to secp256k1 (hybrid encoding): refused by the prefix check."""
    account = derive_account("test test test test test test test test test test test junk", 3)
    for _ in range(8):  # the parity of each ephemeral key decides which flip parses: several keys
        sealed = seal(public_key(account), "hi")
        for bit in range(8):
            damaged = bytes([sealed[0] ^ (1 << bit)]) + sealed[1:]
            with pytest.raises(ValueError, match="cannot decrypt"):
                open_payload(account, damaged)
    with pytest.raises(ValueError, match="cannot decrypt"):
        open_payload(account, b"")


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=1, max_size=300).filter(lambda t: len(t.encode()) <= MAX_TEXT_BYTES),
    flip=st.integers(min_value=0),
)
def test_seal_open_round_trip_and_any_flipped_bit_is_refused(text: str, flip: int) -> None:
    account = derive_account("test test test test test test test test test test test junk", 3)
    sealed = seal(public_key(account), text)
    assert open_payload(account, sealed) == text
    damaged = bytearray(sealed)
    damaged[flip % len(damaged)] ^= 1 << (flip % 8)
    with pytest.raises(ValueError, match="cannot decrypt"):
        open_payload(account, bytes(damaged))
