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
    function capabilityWeight(address agent, string calldata capability) external view returns (uint8);
    function hasCapability(address agent, string calldata capability) external view returns (bool);
    function setReputation(address agent, uint8 value) external;
    function setCapabilityWeight(address agent, string calldata capability, uint8 weight) external;
}

interface ITaskManager {
    enum Status { None, Open, Assigned, Submitted, Completed, Failed, Cancelled, Expired }

    struct Task {
        address requester;
        address evaluator;
        address assignee;
        Status status;
        uint8 score;
        uint64 biddingDeadline;
        uint64 executionDuration;
        uint64 executionDeadline;
        uint64 createdAt;
        uint256 reward;
        uint256 price;
        bytes32 resultHash;
        string resultURI;
        string description;
        string[] tags;
    }

    function getTask(uint256 taskId) external view returns (Task memory);
    function statusOf(uint256 taskId) external view returns (Status);
    function taskCount() external view returns (uint256);
    function getTags(uint256 taskId) external view returns (string[] memory);
    function rewardOf(uint256 taskId) external view returns (uint256);
    function requesterOf(uint256 taskId) external view returns (address);
    function biddingDeadlineOf(uint256 taskId) external view returns (uint64);
    function assign(uint256 taskId, address agent, uint256 price) external;
    function expireUnbid(uint256 taskId) external;
}

interface IIncentiveEngine {
    function settle(uint256 taskId, address agent, address requester, uint256 price, uint8 score) external payable;
    function refund(uint256 taskId, address to) external payable;
    function penalize(uint256 taskId, address agent) external;
}
