// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, Ids, Owned, Strings, AlreadyWired} from "./Common.sol";

/// Agents register themselves (the caller is the agent) with capabilities and weights 0..100.
/// Reputation starts at 50 and only the IncentiveEngine moves it (bounded 0..100). Reputation, active and
/// registered share one slot, which `standing` reads: the one registry read a bid needs. Each capability
/// also has an id (`Ids.fromText`, the same encoding as task tags) indexed for the settlement's weight moves.
contract AgentRegistry is Owned {
    using Strings for string;

    struct Agent {
        string name;
        string[] capabilities;
        uint8[] weights;
        uint8 reputation;
        bool active;
        bool registered;
        uint64 registeredAt;
    }

    error AlreadyRegistered(address agent);
    error NotRegistered(address agent);
    error LengthMismatch(uint256 capabilities, uint256 weights);
    error TooManyCapabilities(uint256 count, uint256 max);
    error WeightOutOfRange(uint8 weight);
    error DuplicateCapability(string capability);
    error AgentInactive(address agent);
    error AgentAlreadyActive(address agent);
    error NotIncentiveEngine(address caller);
    error ReputationOutOfRange(uint8 value);

    event AgentRegistered(address indexed agent, string name, string[] capabilities, uint8[] weights);
    event AgentUpdated(address indexed agent, string[] capabilities, uint8[] weights);
    event AgentDeactivated(address indexed agent);
    event AgentReactivated(address indexed agent);
    event ReputationChanged(address indexed agent, uint8 oldValue, uint8 newValue);
    event CapabilityWeightChanged(address indexed agent, bytes32 capability, uint8 oldValue, uint8 newValue);

    mapping(address => Agent) private agents;
    mapping(address => mapping(bytes32 => uint256)) private capabilityIndex; // index + 1 in capabilities
    address[] private agentList;
    address public incentiveEngine;

    function setIncentiveEngine(address engine) external onlyOwner {
        if (incentiveEngine != address(0)) revert AlreadyWired();
        incentiveEngine = engine;
    }

    function register(string calldata name, string[] memory capabilities, uint8[] memory weights) external {
        Agent storage agent = agents[msg.sender];
        if (agent.registered) revert AlreadyRegistered(msg.sender);
        name.check(Limits.MAX_NAME_BYTES);
        _validate(capabilities, weights);
        agent.name = name;
        _index(msg.sender, agent.capabilities, capabilities);
        agent.capabilities = capabilities;
        agent.weights = weights;
        agent.reputation = Limits.INITIAL_REPUTATION;
        agent.active = true;
        agent.registered = true;
        agent.registeredAt = uint64(block.timestamp);
        agentList.push(msg.sender);
        emit AgentRegistered(msg.sender, name, capabilities, weights);
    }

    function updateCapabilities(string[] memory capabilities, uint8[] memory weights) external {
        Agent storage agent = _registered(msg.sender);
        _validate(capabilities, weights);
        _index(msg.sender, agent.capabilities, capabilities);
        agent.capabilities = capabilities;
        agent.weights = weights;
        emit AgentUpdated(msg.sender, capabilities, weights);
    }

    function deactivate() external {
        Agent storage agent = _registered(msg.sender);
        if (!agent.active) revert AgentInactive(msg.sender);
        agent.active = false;
        emit AgentDeactivated(msg.sender);
    }

    function reactivate() external {
        Agent storage agent = _registered(msg.sender);
        if (agent.active) revert AgentAlreadyActive(msg.sender);
        agent.active = true;
        emit AgentReactivated(msg.sender);
    }

    // --- IncentiveEngine only -------------------------------------------------------------------------
    function setReputation(address account, uint8 value) external {
        if (msg.sender != incentiveEngine) revert NotIncentiveEngine(msg.sender);
        if (value > 100) revert ReputationOutOfRange(value);
        Agent storage agent = _registered(account);
        uint8 old = agent.reputation;
        if (old == value) return;
        agent.reputation = value;
        emit ReputationChanged(account, old, value);
    }

    function setCapabilityWeight(address account, bytes32 capability, uint8 weight) external {
        if (msg.sender != incentiveEngine) revert NotIncentiveEngine(msg.sender);
        if (weight > 100) revert WeightOutOfRange(weight);
        Agent storage agent = _registered(account);
        uint256 slot = capabilityIndex[account][capability];
        if (slot == 0) return;
        uint8 old = agent.weights[slot - 1];
        if (old != weight) {
            agent.weights[slot - 1] = weight;
            emit CapabilityWeightChanged(account, capability, old, weight);
        }
    }

    // --- views ------------------------------------------------------------------------------------------
    function isRegistered(address account) external view returns (bool) {
        return agents[account].registered;
    }

    function isActive(address account) external view returns (bool) {
        return agents[account].registered && agents[account].active;
    }

    function getAgent(address account) external view returns (Agent memory) {
        return _registeredView(account);
    }

    function reputationOf(address account) external view returns (uint8) {
        return _registeredView(account).reputation;
    }

    /// One slot: what an auction checks for every bid.
    function standing(address account) external view returns (bool registered, bool active, uint8 reputation) {
        Agent storage agent = agents[account];
        return (agent.registered, agent.active, agent.reputation);
    }

    function capabilityWeightOf(address account, bytes32 capability) public view returns (bool has, uint8 weight) {
        uint256 slot = capabilityIndex[account][capability];
        if (slot == 0) return (false, 0);
        return (true, agents[account].weights[slot - 1]);
    }

    function capabilityWeight(address account, string calldata capability) external view returns (uint8 weight) {
        (, weight) = capabilityWeightOf(account, Ids.fromText(capability));
    }

    function hasCapability(address account, string calldata capability) external view returns (bool has) {
        (has,) = capabilityWeightOf(account, Ids.fromText(capability));
    }

    function agentCount() external view returns (uint256) {
        return agentList.length;
    }

    function agentAt(uint256 index) external view returns (address) {
        return agentList[index];
    }

    // --- internals --------------------------------------------------------------------------------------
    function _registered(address account) private view returns (Agent storage agent) {
        agent = agents[account];
        if (!agent.registered) revert NotRegistered(account);
    }

    function _registeredView(address account) private view returns (Agent storage) {
        return _registered(account);
    }

    function _index(address account, string[] storage previous, string[] memory next) private {
        mapping(bytes32 => uint256) storage index = capabilityIndex[account];
        for (uint256 i = 0; i < previous.length; i++) {
            delete index[Ids.fromText(previous[i])];
        }
        for (uint256 i = 0; i < next.length; i++) {
            index[Ids.fromText(next[i])] = i + 1;
        }
    }

    function _validate(string[] memory capabilities, uint8[] memory weights) private pure {
        uint256 n = capabilities.length;
        if (n != weights.length) revert LengthMismatch(n, weights.length);
        if (n > Limits.MAX_CAPABILITIES) revert TooManyCapabilities(n, Limits.MAX_CAPABILITIES);
        for (uint256 i = 0; i < n; i++) {
            capabilities[i].check(Limits.MAX_CAPABILITY_BYTES);
            if (weights[i] > 100) revert WeightOutOfRange(weights[i]);
            for (uint256 j = 0; j < i; j++) {
                if (capabilities[j].eq(capabilities[i])) revert DuplicateCapability(capabilities[i]);
            }
        }
    }
}
