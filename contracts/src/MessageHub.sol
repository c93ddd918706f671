// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, Strings, IAgentRegistry} from "./Common.sol";

/// Agent-to-agent messages. Payloads are encrypted off chain to the recipient's published public key
/// (secp256k1, ECIES); the contract only carries them in events and counts them.
contract MessageHub {
    using Strings for string;

    error NotRegisteredAgent(address caller);
    error RecipientNotRegistered(address to);
    error EmptyPayload();
    error PayloadTooLarge(uint256 length, uint256 max);
    error InvalidKey(uint256 length);

    event EncryptionKeySet(address indexed agent, bytes publicKey);
    event MessageSent(
        uint256 indexed messageId, address indexed from, address indexed to, uint256 taskId, string topic, bytes payload
    );

    IAgentRegistry public immutable registry;
    uint256 public messageCount;
    mapping(address => uint256) public inboxCount;
    mapping(address => bytes) private keys;

    constructor(address registry_) {
        registry = IAgentRegistry(registry_);
    }

    function setEncryptionKey(bytes calldata publicKey) external {
        if (!registry.isRegistered(msg.sender)) revert NotRegisteredAgent(msg.sender);
        if (publicKey.length != 64 && publicKey.length != 65 && publicKey.length != 33) {
            revert InvalidKey(publicKey.length);
        }
        keys[msg.sender] = publicKey;
        emit EncryptionKeySet(msg.sender, publicKey);
    }

    function encryptionKeyOf(address agent) external view returns (bytes memory) {
        return keys[agent];
    }

    function sendMessage(address to, string calldata topic, bytes calldata payload, uint256 taskId)
        external
        returns (uint256 messageId)
    {
        if (!registry.isRegistered(msg.sender)) revert NotRegisteredAgent(msg.sender);
        if (!registry.isRegistered(to)) revert RecipientNotRegistered(to);
        if (payload.length == 0) revert EmptyPayload();
        if (payload.length > Limits.MAX_PAYLOAD_BYTES) revert PayloadTooLarge(payload.length, Limits.MAX_PAYLOAD_BYTES);
        topic.checkOptional(Limits.MAX_TOPIC_BYTES);
        messageId = ++messageCount;
        inboxCount[to] += 1;
        emit MessageSent(messageId, msg.sender, to, taskId, topic, payload);
    }
}
