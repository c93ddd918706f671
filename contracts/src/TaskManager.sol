// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, Owned, Strings, AlreadyWired, ITaskManager, IIncentiveEngine} from "./Common.sol";

/// Tasks and their escrow. The reward stays here until the task is settled, refunded or expired;
/// then it moves to the IncentiveEngine, which credits payees (pull payments).
/// Invariant: address(this).balance == totalEscrowed.
contract TaskManager is Owned, ITaskManager {
    using Strings for string;

    error ZeroReward();
    error DeadlineInPast(uint64 deadline, uint256 nowTs);
    error ZeroDuration();
    error TooManyTags(uint256 count, uint256 max);
    error TaskNotFound(uint256 taskId);
    error InvalidStatus(uint256 taskId, Status status);
    error NotAuction(address caller);
    error NotAssignee(uint256 taskId, address caller);
    error NotRequester(uint256 taskId, address caller);
    error NotRequesterOrEvaluator(uint256 taskId, address caller);
    error ScoreOutOfRange(uint8 score);
    error EmptyResult();
    error ExecutionDeadlinePassed(uint256 taskId, uint64 deadline);
    error DeadlineNotReached(uint256 taskId, uint64 deadline);
    error BiddingClosed(uint256 taskId);

    event TaskCreated(
        uint256 indexed taskId,
        address indexed requester,
        address indexed evaluator,
        uint256 reward,
        uint64 biddingDeadline,
        string[] tags,
        string description
    );
    event TaskAssigned(uint256 indexed taskId, address indexed agent, uint256 price, uint64 executionDeadline);
    event ResultSubmitted(uint256 indexed taskId, address indexed agent, bytes32 resultHash, string resultURI);
    event TaskCompleted(uint256 indexed taskId, address indexed agent, uint8 score, bool passed, uint256 payment);
    event TaskCancelled(uint256 indexed taskId);
    event TaskExpired(uint256 indexed taskId, address indexed agent);

    mapping(uint256 => Task) private tasks;
    uint256 public taskCount;
    uint256 public totalEscrowed;
    address public auction;
    IIncentiveEngine public incentiveEngine;
    address public immutable registry;

    constructor(address registry_) {
        registry = registry_;
    }

    function setAuction(address auction_) external onlyOwner {
        if (auction != address(0)) revert AlreadyWired();
        auction = auction_;
    }

    function setIncentiveEngine(address engine) external onlyOwner {
        if (address(incentiveEngine) != address(0)) revert AlreadyWired();
        incentiveEngine = IIncentiveEngine(engine);
    }

    function createTask(
        string calldata description,
        string[] memory tags,
        uint64 biddingDeadline,
        uint64 executionDuration,
        address evaluator
    ) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert ZeroReward();
        if (biddingDeadline <= block.timestamp) revert DeadlineInPast(biddingDeadline, block.timestamp);
        if (executionDuration == 0) revert ZeroDuration();
        description.check(Limits.MAX_DESCRIPTION_BYTES);
        if (tags.length > Limits.MAX_TAGS) revert TooManyTags(tags.length, Limits.MAX_TAGS);
        for (uint256 i = 0; i < tags.length; i++) tags[i].check(Limits.MAX_TAG_BYTES);

        taskId = ++taskCount;
        Task storage task = tasks[taskId];
        task.requester = msg.sender;
        task.evaluator = evaluator;
        task.status = Status.Open;
        task.biddingDeadline = biddingDeadline;
        task.executionDuration = executionDuration;
        task.createdAt = uint64(block.timestamp);
        task.reward = msg.value;
        task.description = description;
        task.tags = tags;
        totalEscrowed += msg.value;
        emit TaskCreated(taskId, msg.sender, evaluator, msg.value, biddingDeadline, tags, description);
    }

    // --- BidAuction only --------------------------------------------------------------------------------
    function assign(uint256 taskId, address agent, uint256 price) external {
        if (msg.sender != auction) revert NotAuction(msg.sender);
        Task storage task = _inStatus(taskId, Status.Open);
        uint64 deadline = uint64(block.timestamp) + task.executionDuration;
        task.assignee = agent;
        task.price = price;
        task.executionDeadline = deadline;
        task.status = Status.Assigned;
        emit TaskAssigned(taskId, agent, price, deadline);
    }

    function expireUnbid(uint256 taskId) external {
        if (msg.sender != auction) revert NotAuction(msg.sender);
        Task storage task = _inStatus(taskId, Status.Open);
        task.status = Status.Expired;
        _release(taskId, task.requester, task.reward);
        emit TaskExpired(taskId, address(0));
    }

    // --- agents, requesters -----------------------------------------------------------------------------
    function submitResult(uint256 taskId, bytes32 resultHash, string calldata resultURI) external {
        Task storage task = _existing(taskId);
        if (msg.sender != task.assignee) revert NotAssignee(taskId, msg.sender);
        if (task.status != Status.Assigned) revert InvalidStatus(taskId, task.status);
        if (block.timestamp > task.executionDeadline) revert ExecutionDeadlinePassed(taskId, task.executionDeadline);
        if (resultHash == bytes32(0)) revert EmptyResult();
        resultURI.checkOptional(Limits.MAX_URI_BYTES);
        task.resultHash = resultHash;
        task.resultURI = resultURI;
        task.status = Status.Submitted;
        emit ResultSubmitted(taskId, msg.sender, resultHash, resultURI);
    }

    function completeTask(uint256 taskId, uint8 score) external {
        Task storage task = _existing(taskId);
        if (msg.sender != task.requester && msg.sender != task.evaluator) {
            revert NotRequesterOrEvaluator(taskId, msg.sender);
        }
        if (task.status != Status.Submitted) revert InvalidStatus(taskId, task.status);
        if (score > 100) revert ScoreOutOfRange(score);
        bool passed = score >= Limits.PASS_SCORE;
        task.score = score;
        task.status = passed ? Status.Completed : Status.Failed;
        uint256 reward = task.reward;
        totalEscrowed -= reward;
        incentiveEngine.settle{value: reward}(taskId, task.assignee, task.requester, task.price, score);
        emit TaskCompleted(taskId, task.assignee, score, passed, passed ? task.price : 0);
    }

    function cancelTask(uint256 taskId) external {
        Task storage task = _existing(taskId);
        if (msg.sender != task.requester) revert NotRequester(taskId, msg.sender);
        if (task.status != Status.Open) revert InvalidStatus(taskId, task.status);
        if (block.timestamp >= task.biddingDeadline) revert BiddingClosed(taskId);
        task.status = Status.Cancelled;
        _release(taskId, task.requester, task.reward);
        emit TaskCancelled(taskId);
    }

    function expireTask(uint256 taskId) external {
        Task storage task = _inStatus(taskId, Status.Assigned);
        if (block.timestamp <= task.executionDeadline) revert DeadlineNotReached(taskId, task.executionDeadline);
        task.status = Status.Expired;
        _release(taskId, task.requester, task.reward);
        incentiveEngine.penalize(taskId, task.assignee);
        emit TaskExpired(taskId, task.assignee);
    }

    // --- views ------------------------------------------------------------------------------------------
    function getTask(uint256 taskId) external view returns (Task memory) {
        return _existingView(taskId);
    }

    function statusOf(uint256 taskId) external view returns (Status) {
        return tasks[taskId].status;
    }

    function getTags(uint256 taskId) external view returns (string[] memory) {
        return _existingView(taskId).tags;
    }

    function rewardOf(uint256 taskId) external view returns (uint256) {
        return _existingView(taskId).reward;
    }

    function requesterOf(uint256 taskId) external view returns (address) {
        return _existingView(taskId).requester;
    }

    function biddingDeadlineOf(uint256 taskId) external view returns (uint64) {
        return _existingView(taskId).biddingDeadline;
    }

    // --- internals --------------------------------------------------------------------------------------
    function _release(uint256 taskId, address to, uint256 amount) private {
        totalEscrowed -= amount;
        incentiveEngine.refund{value: amount}(taskId, to);
    }

    function _existing(uint256 taskId) private view returns (Task storage task) {
        task = tasks[taskId];
        if (task.status == Status.None) revert TaskNotFound(taskId);
    }

    function _existingView(uint256 taskId) private view returns (Task storage) {
        return _existing(taskId);
    }

    function _inStatus(uint256 taskId, Status status) private view returns (Task storage task) {
        task = _existing(taskId);
        if (task.status != status) revert InvalidStatus(taskId, task.status);
    }
}
