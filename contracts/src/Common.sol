// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// Limits shared by every contract: keep on-chain strings and arrays small and bounded.
library Limits {
    uint256 internal constant MAX_NAME_BYTES = 64;
    uint256 internal constant MAX_CAPABILITY_BYTES = 32;
    uint256 internal constant MAX_CAPABILITIES = 16;
    uint256 internal constant MAX_TAGS = 8;
    uint256 internal constant MAX_TAG_BYTES = 32;
    uint256 internal constant MAX_DESCRIPTION_BYTES = 2048;
    uint256 internal constant MAX_URI_BYTES = 256;
    uint256 internal constant MAX_BIDS_PER_TASK = 64;
    uint256 internal constant MAX_PAYLOAD_BYTES = 4096;
    uint256 internal constant MAX_TOPIC_BYTES = 64;
    uint256 internal constant MAX_ACTION_TYPE_BYTES = 32;
    uint8 internal constant PASS_SCORE = 50;
    uint8 internal constant FAILURE_PENALTY = 10;
    uint8 internal constant INITIAL_REPUTATION = 50;
    /// Rewards and prices are stored in 80 bits (up to about 1.2 million ETH per task).
    uint256 internal constant MAX_REWARD = type(uint80).max;
    /// Seconds after a sealed auction's bidding deadline during which the requester alone may finalize
    /// with signed bids; after it the signed bids are void and anyone may close the task (refund).
    uint64 internal constant REVEAL_WINDOW = 3600;
}

/// Ids of capabilities and tags: the UTF-8 text, 1 to 32 bytes, left-aligned in a bytes32 (readable both
/// ways; "research" as a tag and as a capability is the same id).
library Ids {
    error InvalidId(bytes32 id);

    function fromText(string memory text) internal pure returns (bytes32 id) {
        uint256 length = bytes(text).length;
        if (length == 0) revert EmptyString();
        if (length > 32) revert StringTooLong(length, 32);
        assembly {
            id := mload(add(text, 32))
        }
        // clear whatever followed the text in memory
        id = id & ~bytes32(type(uint256).max >> (8 * length));
    }

    function check(bytes32 id) internal pure {
        if (id == bytes32(0) || uint8(id[0]) == 0) revert InvalidId(id);
    }
}

error NotOwner();
error AlreadyWired();
error EmptyString();
error StringTooLong(uint256 length, uint256 max);

/// One-time wiring by the deployer.
abstract contract Owned {
    address public immutable owner;

    constructor() {
        owner = msg.sender;
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }
}

library Strings {
    function check(string memory value, uint256 max) internal pure {
        uint256 length = bytes(value).length;
        if (length == 0) revert EmptyString();
        if (length > max) revert StringTooLong(length, max);
    }

    function checkOptional(string memory value, uint256 max) internal pure {
        uint256 length = bytes(value).length;
        if (length > max) revert StringTooLong(length, max);
    }

    function eq(string memory a, string memory b) internal pure returns (bool) {
        return keccak256(bytes(a)) == keccak256(bytes(b));
    }
}

interface IAgentRegistry {
    function isActive(address agent) external view returns (bool);
    function isRegistered(address agent) external view returns (bool);
    function reputationOf(address agent) external view returns (uint8);
    function standing(address agent) external view returns (bool registered, bool active, uint8 reputation);
    function capabilityWeightOf(address agent, bytes32 capability) external view returns (bool has, uint8 weight);
    function setReputation(address agent, uint8 value) external;
    function setCapabilityWeight(address agent, bytes32 capability, uint8 weight) external;
}

interface ITaskManager {
    enum Status { None, Open, Assigned, Submitted, Completed, Failed, Cancelled, Expired }
    /// How a task's auction runs: bids as transactions (Open) or signed off chain and submitted at
    /// finalize by the requester (Sealed).
    enum Mode { Open, Sealed }

    /// A task as the views return it (storage is packed differently, see TaskManager).
    struct Task {
        address requester;
        address evaluator;
        address assignee;
        Status status;
        Mode mode;
        uint8 score;
        uint64 biddingDeadline;
        uint64 executionDuration;
        uint64 executionDeadline;
        uint256 reward;
        uint256 price;
        bytes32[] tags;
    }

    function getTask(uint256 taskId) external view returns (Task memory);
    function statusOf(uint256 taskId) external view returns (Status);
    function taskCount() external view returns (uint64);
    function getTags(uint256 taskId) external view returns (bytes32[] memory);
    function biddingTerms(uint256 taskId)
        external
        view
        returns (address requester, uint256 reward, uint64 biddingDeadline, Status status, Mode mode);
    function assign(uint256 taskId, address agent, uint256 price) external;
    function expireUnbid(uint256 taskId) external;
}

interface IBidAuction {
    function openAuction(uint256 taskId, address requester, uint256 reward, uint64 biddingDeadline) external;
    function closeAuction(uint256 taskId) external;
}

interface IIncentiveEngine {
    function settle(uint256 taskId, address agent, address requester, uint256 price, uint8 score, bytes32[] calldata tags)
        external
        payable;
    function refund(uint256 taskId, address to) external payable;
    function penalize(uint256 taskId, address agent) external;
}
