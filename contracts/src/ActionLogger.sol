// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, Strings, IAgentRegistry} from "./Common.sol";

/// An append-only audit trail of agent actions (type + hash of the off-chain data).
contract ActionLogger {
    using Strings for string;

    error NotRegisteredAgent(address caller);

    event ActionLogged(
        address indexed agent, uint256 indexed taskId, uint256 index, string actionType, bytes32 dataHash
    );

    IAgentRegistry public immutable registry;
    mapping(address => uint256) public actionCount;
    uint256 public totalActions;

    constructor(address registry_) {
        registry = IAgentRegistry(registry_);
    }

    function logAction(uint256 taskId, string calldata actionType, bytes32 dataHash) external returns (uint256 index) {
        if (!registry.isRegistered(msg.sender)) revert NotRegisteredAgent(msg.sender);
        actionType.check(Limits.MAX_ACTION_TYPE_BYTES);
        index = actionCount[msg.sender]++;
        totalActions += 1;
        emit ActionLogged(msg.sender, taskId, index, actionType, dataHash);
    }
}
