// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Limits, IAgentRegistry, ITaskManager, IBidAuction} from "./Common.sol";

/// One auction per task, in the mode the requester chose at creation. The winner is the bid with the lowest
/// amount / (reputation + 1), compared exactly (cross-multiplied).
///
/// Open mode: registered, active agents bid by transaction, once per task; a bid is a commitment (no
/// withdrawal). The running best is kept as bids arrive, with the bidder's reputation at bid time, so
/// `finalize` reads one slot instead of looping; ties go to the earlier bid. A bid costs one new storage
/// slot (the packed bid) and reads two slots the TaskManager wrote here at creation, so a losing bidder
/// pays about 55k gas.
///
/// Sealed mode: agents sign EIP-712 `Bid(taskId, amount, agent, expiry)` off chain (domain: this
/// contract on this chain) and publish it to the task's bid book; losing bidders send nothing. After the
/// bidding deadline the requester calls `finalizeSealed` with the signed bids it collected (sorted by
/// agent address, at most MAX_BIDS_PER_TASK); the contract checks every signature, expiry, registration,
/// the amount range, and picks the best of them by the same rule (reputation read at finalize; ties to the
/// lower address). What the requester can do: leave a bid out (nothing on chain proves it was sent), or
/// include a bid signed after the deadline (nothing on chain dates a signature). What it cannot do: assign
/// to a bid that was never signed, change an amount, replay a bid of another task, chain or contract,
/// prefer a worse bid among those it submits, or finalize twice. After the reveal window
/// (Limits.REVEAL_WINDOW past the deadline) the signed bids are void and anyone may close the task
/// without a winner (the requester is refunded).
contract BidAuction is IBidAuction {
    struct SignedBid {
        address agent;
        uint256 amount;
        uint64 expiry;
        bytes signature;
    }

    error NotRegisteredAgent(address caller);
    error AgentInactive(address agent);
    error TaskNotOpen(uint256 taskId);
    error BiddingClosed(uint256 taskId);
    error BiddingStillOpen(uint256 taskId, uint64 deadline);
    error BidOutOfRange(uint256 amount, uint256 reward);
    error AlreadyBid(uint256 taskId, address agent);
    error RequesterCannotBid(uint256 taskId);
    error TooManyBids(uint256 taskId, uint256 max);
    error AlreadyFinalized(uint256 taskId);
    error NotTaskManager(address caller);
    error WrongMode(uint256 taskId, ITaskManager.Mode mode);
    error NotRequester(uint256 taskId, address caller);
    error RevealWindowClosed(uint256 taskId, uint64 closedAt);
    error BidsNotSorted(address agent);
    error BidExpired(address agent, uint64 expiry);
    error InvalidBidSignature(address agent);

    event BidPlaced(uint256 indexed taskId, address indexed agent, uint256 amount);
    event AuctionFinalized(uint256 indexed taskId, address indexed winner, uint256 amount, uint256 bidCount);

    bytes32 public constant BID_TYPEHASH = keccak256("Bid(uint256 taskId,uint256 amount,address agent,uint64 expiry)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    string public constant NAME = "agentfleet BidAuction";
    string public constant VERSION = "1";
    uint256 private constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    // terms: deadline (40) | reward (80) | requester tag (128) | state (8). The requester tag is the low
    // 128 bits of the requester's address: the requester's own bids always match it (forging a match takes
    // 2^128 work), and it lets the terms fit the one slot a bid reads.
    uint256 private constant OPEN = 1;
    uint256 private constant CANCELLED = 2;
    // candidate: agent (160) | amount (80) | reputation (8) | marker (8): the marker keeps an empty
    // candidate slot non-zero, so the first bidder does not pay for creating it.
    uint256 private constant EMPTY = 1 << 248;

    IAgentRegistry public immutable registry;
    ITaskManager public immutable taskManager;

    mapping(uint256 => uint256) private terms;
    mapping(uint256 => uint256) private candidate;
    // bid: amount (80) | reputation (8) | placedAt (40)
    mapping(uint256 => mapping(address => uint256)) private bids;

    constructor(address registry_, address taskManager_) {
        registry = IAgentRegistry(registry_);
        taskManager = ITaskManager(taskManager_);
    }

    modifier onlyTaskManager() {
        if (msg.sender != address(taskManager)) revert NotTaskManager(msg.sender);
        _;
    }

    // --- TaskManager only -------------------------------------------------------------------------------
    function openAuction(uint256 taskId, address requester, uint256 reward, uint64 biddingDeadline)
        external
        onlyTaskManager
    {
        terms[taskId] = uint256(biddingDeadline) | (reward << 40) | (uint256(uint128(uint160(requester))) << 120)
            | (OPEN << 248);
        candidate[taskId] = EMPTY;
    }

    function closeAuction(uint256 taskId) external onlyTaskManager {
        terms[taskId] = (terms[taskId] & ~(uint256(0xff) << 248)) | (CANCELLED << 248);
        delete candidate[taskId];
    }

    // --- open mode --------------------------------------------------------------------------------------
    function placeBid(uint256 taskId, uint256 amount) external {
        uint256 t = terms[taskId];
        if (t >> 248 != OPEN) _notOpen(taskId, t);
        if (block.timestamp >= uint40(t)) revert BiddingClosed(taskId);
        if (uint128(t >> 120) == uint128(uint160(msg.sender))) revert RequesterCannotBid(taskId);
        uint256 reward = uint80(t >> 40);
        if (amount == 0 || amount > reward) revert BidOutOfRange(amount, reward);
        uint8 reputation = _standing(msg.sender);
        mapping(address => uint256) storage taskBids = bids[taskId];
        if (taskBids[msg.sender] != 0) revert AlreadyBid(taskId, msg.sender);
        taskBids[msg.sender] = amount | (uint256(reputation) << 80) | (block.timestamp << 88);
        uint256 best = candidate[taskId];
        if (address(uint160(best)) == address(0) || _better(amount, reputation, uint80(best >> 160), uint8(best >> 240)))
        {
            candidate[taskId] = uint256(uint160(msg.sender)) | (amount << 160) | (uint256(reputation) << 240) | EMPTY;
        }
        emit BidPlaced(taskId, msg.sender, amount);
    }

    /// Close an open auction after its deadline (anyone may): assign the best bid, or expire the task
    /// with a refund when nobody bid. The auction's two slots are cleared (a gas refund for the caller);
    /// the TaskManager's status is the record that it is over.
    function finalize(uint256 taskId) external {
        uint256 t = terms[taskId];
        if (t >> 248 != OPEN) _notOpen(taskId, t);
        uint64 deadline = uint40(t);
        if (block.timestamp < deadline) revert BiddingStillOpen(taskId, deadline);
        uint256 best = candidate[taskId];
        delete terms[taskId];
        delete candidate[taskId];
        address winner = address(uint160(best));
        uint256 price = uint80(best >> 160);
        if (winner == address(0)) {
            price = 0;
            taskManager.expireUnbid(taskId);
        } else {
            taskManager.assign(taskId, winner, price);
        }
        emit AuctionFinalized(taskId, winner, price, 0);
    }

    // --- sealed mode ------------------------------------------------------------------------------------
    /// Close a sealed auction with the signed bids collected for it (sorted by agent address). Within the
    /// reveal window only the requester may; after it anyone may, with no bids (refund).
    function finalizeSealed(uint256 taskId, SignedBid[] calldata signed) external {
        (address requester, uint256 reward, uint64 deadline, ITaskManager.Status status, ITaskManager.Mode mode) =
            taskManager.biddingTerms(taskId);
        if (mode != ITaskManager.Mode.Sealed) revert WrongMode(taskId, mode);
        if (status != ITaskManager.Status.Open) revert TaskNotOpen(taskId);
        if (block.timestamp < deadline) revert BiddingStillOpen(taskId, deadline);
        uint64 closesAt = deadline + Limits.REVEAL_WINDOW;
        if (block.timestamp <= closesAt) {
            if (msg.sender != requester) revert NotRequester(taskId, msg.sender);
        } else if (signed.length != 0) {
            revert RevealWindowClosed(taskId, closesAt);
        }
        if (signed.length > Limits.MAX_BIDS_PER_TASK) revert TooManyBids(taskId, Limits.MAX_BIDS_PER_TASK);
        (address winner, uint256 price) = _bestSigned(taskId, requester, reward, signed);
        if (winner == address(0)) {
            taskManager.expireUnbid(taskId);
        } else {
            taskManager.assign(taskId, winner, price);
        }
        emit AuctionFinalized(taskId, winner, price, signed.length);
    }

    /// Check every signed bid (order, range, expiry, signature, standing) and return the best.
    function _bestSigned(uint256 taskId, address requester, uint256 reward, SignedBid[] calldata signed)
        private
        view
        returns (address winner, uint256 price)
    {
        bytes32 domain = domainSeparator();
        uint8 winnerReputation;
        address previous;
        for (uint256 i = 0; i < signed.length; i++) {
            SignedBid calldata bid = signed[i];
            address agent = bid.agent;
            if (agent <= previous) revert BidsNotSorted(agent);
            previous = agent;
            if (agent == requester) revert RequesterCannotBid(taskId);
            if (bid.amount == 0 || bid.amount > reward) revert BidOutOfRange(bid.amount, reward);
            if (block.timestamp > bid.expiry) revert BidExpired(agent, bid.expiry);
            if (_signer(domain, taskId, bid) != agent) revert InvalidBidSignature(agent);
            uint8 reputation = _standing(agent);
            if (winner == address(0) || _better(bid.amount, reputation, price, winnerReputation)) {
                (winner, price, winnerReputation) = (agent, bid.amount, reputation);
            }
        }
    }

    // --- views ------------------------------------------------------------------------------------------
    /// The agent's open-mode bid on the task (`live` is false when it has none).
    function bidOf(uint256 taskId, address agent) external view returns (uint256 amount, bool live) {
        uint256 bid = bids[taskId][agent];
        return (uint80(bid), bid != 0);
    }

    /// The open auction's running best (zero address while nobody bid, and after finalize).
    function candidateOf(uint256 taskId) external view returns (address agent, uint256 amount) {
        uint256 best = candidate[taskId];
        return (address(uint160(best)), uint80(best >> 160));
    }

    /// True once the auction has chosen (or found no bid): the task left Open other than by cancellation.
    function isFinalized(uint256 taskId) external view returns (bool) {
        ITaskManager.Status status = taskManager.statusOf(taskId);
        return status != ITaskManager.Status.None && status != ITaskManager.Status.Open
            && status != ITaskManager.Status.Cancelled;
    }

    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
    }

    /// The EIP-712 digest an agent signs for a sealed bid.
    function bidDigest(uint256 taskId, uint256 amount, address agent, uint64 expiry) external view returns (bytes32) {
        return _digest(domainSeparator(), taskId, amount, agent, expiry);
    }

    // --- internals --------------------------------------------------------------------------------------
    /// a / (ra + 1) < b / (rb + 1), exactly (amounts are at most 80 bits, so nothing overflows).
    function _better(uint256 a, uint8 ra, uint256 b, uint8 rb) private pure returns (bool) {
        return a * (uint256(rb) + 1) < b * (uint256(ra) + 1);
    }

    function _standing(address agent) private view returns (uint8 reputation) {
        (bool registered, bool active, uint8 value) = registry.standing(agent);
        if (!registered) revert NotRegisteredAgent(agent);
        if (!active) revert AgentInactive(agent);
        return value;
    }

    /// Why a task without open terms cannot take open-mode calls (the error path only: one extra call).
    function _notOpen(uint256 taskId, uint256 t) private view {
        if (t >> 248 == CANCELLED) revert TaskNotOpen(taskId);
        (,,, ITaskManager.Status status, ITaskManager.Mode mode) = taskManager.biddingTerms(taskId); // or TaskNotFound
        if (mode == ITaskManager.Mode.Sealed) revert WrongMode(taskId, mode);
        if (status != ITaskManager.Status.Open) revert AlreadyFinalized(taskId);
        revert TaskNotOpen(taskId);
    }

    function _digest(bytes32 domain, uint256 taskId, uint256 amount, address agent, uint64 expiry)
        private
        pure
        returns (bytes32)
    {
        bytes32 structHash = keccak256(abi.encode(BID_TYPEHASH, taskId, amount, agent, expiry));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    function _signer(bytes32 domain, uint256 taskId, SignedBid calldata bid) private pure returns (address) {
        return _recover(_digest(domain, taskId, bid.amount, bid.agent, bid.expiry), bid.signature);
    }

    /// ecrecover for a 65-byte (r, s, v) signature; malleable (high-s) or malformed ones recover nobody.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
