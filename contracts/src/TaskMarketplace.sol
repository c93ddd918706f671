// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ITaskManager} from "./Common.sol";

/// Read-only browsing of open tasks with cursor pagination. Each call scans at most MAX_SCAN task ids
/// so it stays cheap however many tasks exist; `nextCursor` is 0 when the scan reached the end.
contract TaskMarketplace {
    uint256 public constant MAX_LIMIT = 100;
    uint256 public constant MAX_SCAN = 500;

    error LimitTooLarge(uint256 limit, uint256 max);

    ITaskManager public immutable taskManager;

    constructor(address taskManager_) {
        taskManager = ITaskManager(taskManager_);
    }

    function openTasks(uint256 cursor, uint256 limit) external view returns (uint256[] memory ids, uint256 nextCursor) {
        return _scan(cursor, limit, bytes32(0), 0, address(0));
    }

    function filterTasks(bytes32 tag, uint256 minReward, uint256 cursor, uint256 limit)
        external
        view
        returns (uint256[] memory ids, uint256 nextCursor)
    {
        return _scan(cursor, limit, tag, minReward, address(0));
    }

    function tasksByRequester(address requester, uint256 cursor, uint256 limit)
        external
        view
        returns (uint256[] memory ids, uint256 nextCursor)
    {
        return _scan(cursor, limit, bytes32(0), 0, requester);
    }

    function _scan(uint256 cursor, uint256 limit, bytes32 tag, uint256 minReward, address requester)
        private
        view
        returns (uint256[] memory ids, uint256 nextCursor)
    {
        if (limit == 0 || limit > MAX_LIMIT) revert LimitTooLarge(limit, MAX_LIMIT);
        uint256 count = taskManager.taskCount();
        uint256 id = cursor == 0 ? 1 : cursor;
        uint256 scanEnd = id + MAX_SCAN;
        ids = new uint256[](limit);
        uint256 found;
        for (; id <= count && id < scanEnd && found < limit; id++) {
            if (_matches(id, tag, minReward, requester)) ids[found++] = id;
        }
        assembly {
            mstore(ids, found)
        }
        nextCursor = id <= count ? id : 0;
    }

    function _matches(uint256 id, bytes32 tag, uint256 minReward, address requester) private view returns (bool) {
        ITaskManager.Task memory task = taskManager.getTask(id);
        if (task.status != ITaskManager.Status.Open || block.timestamp >= task.biddingDeadline) return false;
        if (requester != address(0)) return task.requester == requester;
        if (task.reward < minReward) return false;
        if (tag == bytes32(0)) return true;
        for (uint256 i = 0; i < task.tags.length; i++) {
            if (task.tags[i] == tag) return true;
        }
        return false;
    }
}
