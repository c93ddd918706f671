// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, IAgentRegistry, ITaskManager} from "./Common.sol";

/// Sealed-by-deadline auction per task. Only registered, active agents bid; one live bid per agent.
/// After the deadline anyone may finalize once: the winner is the live bid with the lowest
/// amount * 100 / (reputation + 1) (reputation read at finalize time); ties go to the earliest bid.
contract BidAuction {
    struct Bid {
        address agent;
        uint256 amount;
        uint64 placedAt;
        bool live;
    }

    error NotRegisteredAgent(address caller);
    error AgentInactive(address agent);
    error TaskNotOpen(uint256 taskId);
    error BiddingClosed(uint256 taskId);
    error BiddingStillOpen(uint256 taskId, uint64 deadline);
    error BidOutOfRange(uint256 amount, uint256 reward);
    error AlreadyBid(uint256 taskId, address agent);
    error NoBid(uint256 taskId, address agent);
    error RequesterCannotBid(uint256 taskId);
    error TooManyBids(uint256 taskId, uint256 max);
    error AlreadyFinalized(uint256 taskId);

    event BidPlaced(uint256 indexed taskId, address indexed agent, uint256 amount);
    event BidWithdrawn(uint256 indexed taskId, address indexed agent);
    event AuctionFinalized(uint256 indexed taskId, address indexed winner, uint256 amount, uint256 bidCount);

    IAgentRegistry public immutable registry;
    ITaskManager public immutable taskManager;

    mapping(uint256 => Bid[]) private bids;
    mapping(uint256 => mapping(address => uint256)) private bidSlot; // index + 1 of the agent's bid
    mapping(uint256 => uint256) private liveBids;
    mapping(uint256 => bool) public isFinalized;

    constructor(address registry_, address taskManager_) {
        registry = IAgentRegistry(registry_);
        taskManager = ITaskManager(taskManager_);
    }

    function placeBid(uint256 taskId, uint256 amount) external {
        if (!registry.isRegistered(msg.sender)) revert NotRegisteredAgent(msg.sender);
        if (!registry.isActive(msg.sender)) revert AgentInactive(msg.sender);
        _requireBiddable(taskId);
        if (taskManager.requesterOf(taskId) == msg.sender) revert RequesterCannotBid(taskId);
        uint256 reward = taskManager.rewardOf(taskId);
        if (amount == 0 || amount > reward) revert BidOutOfRange(amount, reward);
        uint256 slot = bidSlot[taskId][msg.sender];
        if (slot != 0) {
            Bid storage previous = bids[taskId][slot - 1];
            if (previous.live) revert AlreadyBid(taskId, msg.sender);
            previous.amount = amount;
            previous.placedAt = uint64(block.timestamp);
            previous.live = true;
        } else {
            if (bids[taskId].length >= Limits.MAX_BIDS_PER_TASK) revert TooManyBids(taskId, Limits.MAX_BIDS_PER_TASK);
            bids[taskId].push(Bid(msg.sender, amount, uint64(block.timestamp), true));
            bidSlot[taskId][msg.sender] = bids[taskId].length;
        }
        liveBids[taskId] += 1;
        emit BidPlaced(taskId, msg.sender, amount);
    }

    function withdrawBid(uint256 taskId) external {
        _requireBiddable(taskId);
        uint256 slot = bidSlot[taskId][msg.sender];
        if (slot == 0 || !bids[taskId][slot - 1].live) revert NoBid(taskId, msg.sender);
        bids[taskId][slot - 1].live = false;
        liveBids[taskId] -= 1;
        emit BidWithdrawn(taskId, msg.sender);
    }

    function finalize(uint256 taskId) external {
        if (isFinalized[taskId]) revert AlreadyFinalized(taskId);
        if (taskManager.statusOf(taskId) != ITaskManager.Status.Open) revert TaskNotOpen(taskId);
        uint64 deadline = taskManager.biddingDeadlineOf(taskId);
        if (block.timestamp < deadline) revert BiddingStillOpen(taskId, deadline);
        isFinalized[taskId] = true;

        Bid[] storage list = bids[taskId];
        address winner;
        uint256 price;
        uint256 best = type(uint256).max;
        for (uint256 i = 0; i < list.length; i++) {
            Bid storage bid = list[i];
            if (!bid.live || !registry.isActive(bid.agent)) continue;
            uint256 weighted = (bid.amount * 100) / (uint256(registry.reputationOf(bid.agent)) + 1);
            if (weighted < best) {
                best = weighted;
                winner = bid.agent;
                price = bid.amount;
            }
        }
        if (winner == address(0)) {
            taskManager.expireUnbid(taskId);
        } else {
            taskManager.assign(taskId, winner, price);
        }
        emit AuctionFinalized(taskId, winner, price, liveBids[taskId]);
    }

    // --- views ------------------------------------------------------------------------------------------
    function getBids(uint256 taskId) external view returns (Bid[] memory) {
        return bids[taskId];
    }

    function bidOf(uint256 taskId, address agent) external view returns (uint256 amount, bool live) {
        uint256 slot = bidSlot[taskId][agent];
        if (slot == 0) return (0, false);
        Bid storage bid = bids[taskId][slot - 1];
        return (bid.amount, bid.live);
    }

    function bidCount(uint256 taskId) external view returns (uint256) {
        return liveBids[taskId];
    }

    function _requireBiddable(uint256 taskId) private view {
        if (taskManager.statusOf(taskId) != ITaskManager.Status.Open || isFinalized[taskId]) revert TaskNotOpen(taskId);
        if (block.timestamp >= taskManager.biddingDeadlineOf(taskId)) revert BiddingClosed(taskId);
    }
}
