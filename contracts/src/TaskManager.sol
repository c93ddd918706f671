// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, Ids, Owned, Strings, AlreadyWired, ITaskManager, IBidAuction, IIncentiveEngine} from "./Common.sol";

/// Tasks and their escrow. The reward stays here until the task is settled, refunded or expired; then it
/// moves to the IncentiveEngine, which pays it out.
/// Invariant: address(this).balance is the sum of the rewards of tasks not yet settled, refunded or expired
/// (ETH enters only through createTask; there is no separate counter to keep in step).
///
/// Lean on purpose: storage holds what the chain enforces (who may act, the escrow, the status and its
/// deadlines, the tags the settlement moves weights on); the rest is emitted. The task text lives off chain,
/// content-addressed: its keccak256 hash and an optional URI are in the TaskCreated event, and so is the text
/// itself when the requester passes it (the contract checks it against the hash). Result hashes and URIs
/// are in the ResultSubmitted event.
contract TaskManager is Owned, ITaskManager {
    using Strings for string;

    error ZeroReward();
    error RewardTooLarge(uint256 reward, uint256 max);
    error DeadlineInPast(uint64 deadline, uint256 nowTs);
    error ZeroDuration();
    error TooManyTags(uint256 count, uint256 max);
    error EmptyContentHash();
    error ContentMismatch(bytes32 contentHash, bytes32 textHash);
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
        uint64 executionDuration,
        Mode mode,
        bytes32[] tags,
        bytes32 contentHash,
        string contentURI,
        string description
    );
    event TaskAssigned(uint256 indexed taskId, address indexed agent, uint256 price, uint64 executionDeadline);
    event ResultSubmitted(uint256 indexed taskId, address indexed agent, bytes32 resultHash, string resultURI);
    event TaskCompleted(uint256 indexed taskId, address indexed agent, uint8 score, bool passed, uint256 payment);
    event TaskCancelled(uint256 indexed taskId);
    event TaskExpired(uint256 indexed taskId, address indexed agent);

    /// Three slots per task. `window` is the execution duration while the task is open and the execution
    /// deadline once it is assigned (the duration is not needed after that).
    struct Stored {
        address requester; // slot 0
        uint80 reward;
        Mode mode;
        uint8 tagCount;
        address evaluator; // slot 1
        Status status;
        uint8 score;
        uint40 biddingDeadline;
        uint40 window;
        address assignee; // slot 2, written at assignment
        uint80 price;
    }

    mapping(uint256 => Stored) private tasks;
    mapping(uint256 => mapping(uint256 => bytes32)) private tagAt;
    uint64 public taskCount;
    IBidAuction public auction;
    IIncentiveEngine public incentiveEngine;
    address public immutable registry;

    constructor(address registry_) {
        registry = registry_;
    }

    function setAuction(address auction_) external onlyOwner {
        if (address(auction) != address(0)) revert AlreadyWired();
        auction = IBidAuction(auction_);
    }

    function setIncentiveEngine(address engine) external onlyOwner {
        if (address(incentiveEngine) != address(0)) revert AlreadyWired();
        incentiveEngine = IIncentiveEngine(engine);
    }

    /// Escrow `msg.value` for a task. `contentHash` is keccak256 of the task text; pass the text as
    /// `description` to publish it in the event (checked against the hash), or leave it empty and give a
    /// `contentURI` where it can be fetched. Tags are ids (see `Ids`).
    function createTask(
        bytes32 contentHash,
        string calldata contentURI,
        string calldata description,
        bytes32[] calldata tags,
        uint64 biddingDeadline,
        uint64 executionDuration,
        address evaluator,
        Mode mode
    ) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert ZeroReward();
        if (msg.value > Limits.MAX_REWARD) revert RewardTooLarge(msg.value, Limits.MAX_REWARD);
        if (biddingDeadline <= block.timestamp || biddingDeadline > type(uint40).max) {
            revert DeadlineInPast(biddingDeadline, block.timestamp);
        }
        if (executionDuration == 0 || executionDuration > type(uint32).max) revert ZeroDuration();
        if (contentHash == bytes32(0)) revert EmptyContentHash();
        description.checkOptional(Limits.MAX_DESCRIPTION_BYTES);
        contentURI.checkOptional(Limits.MAX_URI_BYTES);
        if (bytes(description).length != 0) {
            bytes32 textHash = keccak256(bytes(description));
            if (textHash != contentHash) revert ContentMismatch(contentHash, textHash);
        }
        uint256 tagCount = tags.length;
        if (tagCount > Limits.MAX_TAGS) revert TooManyTags(tagCount, Limits.MAX_TAGS);

        taskId = uint256(taskCount) + 1;
        taskCount = uint64(taskId);
        tasks[taskId] = Stored({
            requester: msg.sender,
            reward: uint80(msg.value),
            mode: mode,
            tagCount: uint8(tagCount),
            evaluator: evaluator,
            status: Status.Open,
            score: 0,
            biddingDeadline: uint40(biddingDeadline),
            window: uint40(executionDuration),
            assignee: address(0),
            price: 0
        });
        for (uint256 i = 0; i < tagCount; i++) {
            Ids.check(tags[i]);
            tagAt[taskId][i] = tags[i];
        }
        if (mode == Mode.Open) auction.openAuction(taskId, msg.sender, msg.value, biddingDeadline);
        emit TaskCreated(
            taskId,
            msg.sender,
            evaluator,
            msg.value,
            biddingDeadline,
            executionDuration,
            mode,
            tags,
            contentHash,
            contentURI,
            description
        );
    }

    // --- BidAuction only --------------------------------------------------------------------------------
    function assign(uint256 taskId, address agent, uint256 price) external {
        if (msg.sender != address(auction)) revert NotAuction(msg.sender);
        Stored storage task = _inStatus(taskId, Status.Open);
        uint64 deadline = uint64(block.timestamp) + task.window;
        task.status = Status.Assigned;
        task.window = uint40(deadline);
        task.assignee = agent;
        task.price = uint80(price);
        emit TaskAssigned(taskId, agent, price, deadline);
    }

    function expireUnbid(uint256 taskId) external {
        if (msg.sender != address(auction)) revert NotAuction(msg.sender);
        Stored storage task = _inStatus(taskId, Status.Open);
        task.status = Status.Expired;
        _release(taskId, task.requester, task.reward);
        emit TaskExpired(taskId, address(0));
    }

    // --- agents, requesters -----------------------------------------------------------------------------
    /// The result itself stays off chain; its hash and URI are in the ResultSubmitted event.
    function submitResult(uint256 taskId, bytes32 resultHash, string calldata resultURI) external {
        Stored storage task = _existing(taskId);
        if (msg.sender != task.assignee) revert NotAssignee(taskId, msg.sender);
        if (task.status != Status.Assigned) revert InvalidStatus(taskId, task.status);
        if (block.timestamp > task.window) revert ExecutionDeadlinePassed(taskId, task.window);
        if (resultHash == bytes32(0)) revert EmptyResult();
        resultURI.checkOptional(Limits.MAX_URI_BYTES);
        task.status = Status.Submitted;
        emit ResultSubmitted(taskId, msg.sender, resultHash, resultURI);
    }

    function completeTask(uint256 taskId, uint8 score) external {
        Stored storage task = _existing(taskId);
        if (msg.sender != task.requester && msg.sender != task.evaluator) {
            revert NotRequesterOrEvaluator(taskId, msg.sender);
        }
        if (task.status != Status.Submitted) revert InvalidStatus(taskId, task.status);
        if (score > 100) revert ScoreOutOfRange(score);
        bool passed = score >= Limits.PASS_SCORE;
        task.score = score;
        task.status = passed ? Status.Completed : Status.Failed;
        _settle(taskId, task, score);
        emit TaskCompleted(taskId, task.assignee, score, passed, passed ? task.price : 0);
    }

    function cancelTask(uint256 taskId) external {
        Stored storage task = _existing(taskId);
        if (msg.sender != task.requester) revert NotRequester(taskId, msg.sender);
        if (task.status != Status.Open) revert InvalidStatus(taskId, task.status);
        if (block.timestamp >= task.biddingDeadline) revert BiddingClosed(taskId);
        task.status = Status.Cancelled;
        if (task.mode == Mode.Open) auction.closeAuction(taskId);
        _release(taskId, task.requester, task.reward);
        emit TaskCancelled(taskId);
    }

    function expireTask(uint256 taskId) external {
        Stored storage task = _inStatus(taskId, Status.Assigned);
        if (block.timestamp <= task.window) revert DeadlineNotReached(taskId, task.window);
        task.status = Status.Expired;
        _release(taskId, task.requester, task.reward);
        incentiveEngine.penalize(taskId, task.assignee);
        emit TaskExpired(taskId, task.assignee);
    }

    // --- views ------------------------------------------------------------------------------------------
    function getTask(uint256 taskId) external view returns (Task memory view_) {
        Stored storage task = _existing(taskId);
        bool open = task.status == Status.Open || task.status == Status.Cancelled
            || (task.status == Status.Expired && task.assignee == address(0));
        view_ = Task({
            requester: task.requester,
            evaluator: task.evaluator,
            assignee: task.assignee,
            status: task.status,
            mode: task.mode,
            score: task.score,
            biddingDeadline: task.biddingDeadline,
            executionDuration: open ? task.window : 0,
            executionDeadline: open ? 0 : task.window,
            reward: task.reward,
            price: task.price,
            tags: _tags(taskId, task.tagCount)
        });
    }

    function statusOf(uint256 taskId) external view returns (Status) {
        return tasks[taskId].status;
    }

    function getTags(uint256 taskId) external view returns (bytes32[] memory) {
        return _tags(taskId, _existing(taskId).tagCount);
    }

    function rewardOf(uint256 taskId) external view returns (uint256) {
        return _existing(taskId).reward;
    }

    function requesterOf(uint256 taskId) external view returns (address) {
        return _existing(taskId).requester;
    }

    function biddingDeadlineOf(uint256 taskId) external view returns (uint64) {
        return _existing(taskId).biddingDeadline;
    }

    /// What an auction needs to close a task, in two slot reads.
    function biddingTerms(uint256 taskId)
        external
        view
        returns (address requester, uint256 reward, uint64 biddingDeadline, Status status, Mode mode)
    {
        Stored storage task = _existing(taskId);
        return (task.requester, task.reward, task.biddingDeadline, task.status, task.mode);
    }

    // --- internals --------------------------------------------------------------------------------------
    function _tags(uint256 taskId, uint256 count) private view returns (bytes32[] memory tags) {
        tags = new bytes32[](count);
        for (uint256 i = 0; i < count; i++) {
            tags[i] = tagAt[taskId][i];
        }
    }

    function _settle(uint256 taskId, Stored storage task, uint8 score) private {
        bytes32[] memory tags = _tags(taskId, task.tagCount);
        incentiveEngine.settle{value: task.reward}(taskId, task.assignee, task.requester, task.price, score, tags);
    }

    function _release(uint256 taskId, address to, uint256 amount) private {
        incentiveEngine.refund{value: amount}(taskId, to);
    }

    function _existing(uint256 taskId) private view returns (Stored storage task) {
        task = tasks[taskId];
        if (task.status == Status.None) revert TaskNotFound(taskId);
    }

    function _inStatus(uint256 taskId, Status status) private view returns (Stored storage task) {
        task = _existing(taskId);
        if (task.status != status) revert InvalidStatus(taskId, task.status);
    }
}
