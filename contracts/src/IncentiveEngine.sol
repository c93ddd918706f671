// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, IAgentRegistry, ITaskManager, IIncentiveEngine} from "./Common.sol";

/// Settlement: pays the winner its price from the escrow, refunds the rest, moves reputation and the
/// capability weights of the task's tags. Payments are pushed with the 2300-gas stipend only (enough to
/// receive, too little to re-enter); a payee that refuses is credited instead and withdraws later, so no
/// payee can block a settlement. Pushing saves every payee a withdrawal transaction.
/// Invariant: address(this).balance == totalCredits.
contract IncentiveEngine is IIncentiveEngine {
    error NotTaskManager(address caller);
    error NothingToWithdraw(address account);
    error PaymentExceedsEscrow(uint256 price, uint256 escrow);
    error TransferFailed(address to, uint256 amount);

    event Settled(
        uint256 indexed taskId, address indexed agent, uint8 score, uint256 payment, uint256 refund, uint8 newReputation
    );
    event Refunded(uint256 indexed taskId, address indexed to, uint256 amount);
    event Penalized(uint256 indexed taskId, address indexed agent, uint8 newReputation);
    event Withdrawn(address indexed account, uint256 amount);
    event Credited(address indexed account, uint256 amount);

    IAgentRegistry public immutable registry;
    ITaskManager public immutable taskManager;

    mapping(address => uint256) public creditOf;
    uint256 public totalCredits;

    constructor(address registry_, address taskManager_) {
        registry = IAgentRegistry(registry_);
        taskManager = ITaskManager(taskManager_);
    }

    modifier onlyTaskManager() {
        if (msg.sender != address(taskManager)) revert NotTaskManager(msg.sender);
        _;
    }

    function settle(uint256 taskId, address agent, address requester, uint256 price, uint8 score, bytes32[] calldata tags)
        external
        payable
        onlyTaskManager
    {
        if (price > msg.value) revert PaymentExceedsEscrow(price, msg.value);
        uint8 reputation = registry.reputationOf(agent);
        uint256 payment;
        if (score >= Limits.PASS_SCORE) {
            payment = price;
            uint256 raised = uint256(reputation) + (score - Limits.PASS_SCORE) / 5;
            reputation = raised > 100 ? 100 : uint8(raised);
        } else {
            reputation = reputation > Limits.FAILURE_PENALTY ? reputation - Limits.FAILURE_PENALTY : 0;
        }
        registry.setReputation(agent, reputation);
        _moveWeights(agent, score, tags);
        _pay(agent, payment);
        _pay(requester, msg.value - payment);
        emit Settled(taskId, agent, score, payment, msg.value - payment, reputation);
    }

    function refund(uint256 taskId, address to) external payable onlyTaskManager {
        _pay(to, msg.value);
        emit Refunded(taskId, to, msg.value);
    }

    function penalize(uint256 taskId, address agent) external onlyTaskManager {
        uint8 reputation = registry.reputationOf(agent);
        reputation = reputation > Limits.FAILURE_PENALTY ? reputation - Limits.FAILURE_PENALTY : 0;
        registry.setReputation(agent, reputation);
        emit Penalized(taskId, agent, reputation);
    }

    function withdraw() external {
        uint256 amount = creditOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        creditOf[msg.sender] = 0;
        totalCredits -= amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// Push with the stipend only; credit when the payee refuses (or has code that needs more gas).
    function _pay(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount, gas: 0}("");
        if (ok) return;
        creditOf[to] += amount;
        totalCredits += amount;
        emit Credited(to, amount);
    }

    /// Each tag the agent has as a capability moves a quarter of the way toward the score.
    function _moveWeights(address agent, uint8 score, bytes32[] calldata tags) private {
        for (uint256 i = 0; i < tags.length; i++) {
            (bool has, uint8 weight) = registry.capabilityWeightOf(agent, tags[i]);
            if (!has) continue;
            int256 moved = int256(uint256(weight)) + (int256(uint256(score)) - int256(uint256(weight))) / 4;
            if (moved < 0) moved = 0;
            if (moved > 100) moved = 100;
            registry.setCapabilityWeight(agent, tags[i], uint8(uint256(moved)));
        }
    }
}
