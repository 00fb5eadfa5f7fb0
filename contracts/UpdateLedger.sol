// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";
import {ITaskRegistry, MAX_PAYLOAD_SIZE_BYTES} from "./interfaces/ITaskRegistry.sol";
import {IUpdateLedger} from "./interfaces/IUpdateLedger.sol";

/**
 * @title UpdateLedger
 * @notice Records model updates (digest + metadata; payload in calldata) and the global
 * model versions aggregated from them, in ledger order.
 * @dev The single source of truth for each task's latest global version.
 */
contract UpdateLedger is IUpdateLedger {
    uint256 public constant MAX_PAYLOAD_SIZE = MAX_PAYLOAD_SIZE_BYTES;

    IConsortium private immutable _consortium;
    ITaskRegistry private immutable _registry;

    Update[] private _updates;
    mapping(uint256 taskId => uint256) private _taskUpdateCount;
    mapping(uint256 taskId => mapping(uint32 baseVersion => mapping(address edge => uint256)))
        private _submissions;
    mapping(uint256 taskId => GlobalModel[]) private _globalModels;

    /**
     * @param consortium_ the consortium whose roles this ledger checks.
     * @param registry_ the task registry; its admin must point it back here with setLedger.
     */
    constructor(IConsortium consortium_, ITaskRegistry registry_) {
        _consortium = consortium_;
        _registry = registry_;
    }

    /// @inheritdoc IUpdateLedger
    function submitUpdate(
        uint256 taskId,
        uint32 baseVersion,
        uint64 numExamples,
        uint64 epsilonMicro,
        bytes calldata payload
    ) external returns (uint256 updateId) {
        _checkRole(_consortium.EDGE_ROLE());
        ITaskRegistry.Task memory record = _activeTask(taskId);
        _checkPayloadSize(payload.length);
        if (numExamples == 0) revert UpdateLedgerZeroExamples();
        _checkBase(taskId, baseVersion, record.maxStaleness);
        if (_submissions[taskId][baseVersion][msg.sender] != 0) {
            revert UpdateLedgerDuplicateSubmission(taskId, baseVersion, msg.sender);
        }

        bytes32 digest = keccak256(payload);
        _updates.push(
            Update({
                taskId: taskId,
                edge: msg.sender,
                baseVersion: baseVersion,
                numExamples: numExamples,
                digest: digest,
                epsilonMicro: epsilonMicro,
                payloadSize: uint32(payload.length),
                blockNumber: uint64(block.number),
                aggregatedIn: 0
            })
        );
        updateId = _updates.length;
        _submissions[taskId][baseVersion][msg.sender] = updateId;
        _taskUpdateCount[taskId] += 1;
        emit UpdateSubmitted(
            updateId,
            taskId,
            baseVersion,
            msg.sender,
            digest,
            numExamples,
            epsilonMicro,
            uint32(payload.length)
        );
    }

    /// @inheritdoc IUpdateLedger
    function commitGlobalModel(
        uint256 taskId,
        uint32 version,
        uint256[] calldata updateIds,
        bytes calldata payload
    ) external {
        _checkRole(_consortium.AGGREGATOR_ROLE());
        ITaskRegistry.Task memory record = _activeTask(taskId);
        uint32 expected = uint32(_globalModels[taskId].length) + 1;
        if (version != expected) revert UpdateLedgerUnexpectedVersion(taskId, version, expected);
        _checkPayloadSize(payload.length);
        if (updateIds.length < record.minUpdates) {
            revert UpdateLedgerTooFewUpdates(taskId, updateIds.length, record.minUpdates);
        }
        _consumeUpdates(taskId, version, record.maxStaleness, updateIds);

        bytes32 digest = keccak256(payload);
        _globalModels[taskId].push(GlobalModel(digest, msg.sender, uint64(block.number), updateIds));
        emit GlobalModelCommitted(taskId, version, digest, msg.sender, updateIds.length);
    }

    /// @inheritdoc IUpdateLedger
    function latestVersion(uint256 taskId) external view returns (uint32) {
        _registry.task(taskId);
        return uint32(_globalModels[taskId].length);
    }

    /// @inheritdoc IUpdateLedger
    function globalModel(uint256 taskId, uint32 version) external view returns (GlobalModel memory) {
        ITaskRegistry.Task memory record = _registry.task(taskId);
        if (version == 0) {
            return GlobalModel(
                record.initialModelDigest, record.publisher, record.publishedBlock, new uint256[](0)
            );
        }
        if (version > _globalModels[taskId].length) revert UpdateLedgerUnknownVersion(taskId, version);
        return _globalModels[taskId][version - 1];
    }

    /// @inheritdoc IUpdateLedger
    function update(uint256 updateId) external view returns (Update memory) {
        if (updateId == 0 || updateId > _updates.length) revert UpdateLedgerUnknownUpdate(updateId);
        return _updates[updateId - 1];
    }

    /// @inheritdoc IUpdateLedger
    function updateCount() external view returns (uint256) {
        return _updates.length;
    }

    /// @inheritdoc IUpdateLedger
    function taskUpdateCount(uint256 taskId) external view returns (uint256) {
        return _taskUpdateCount[taskId];
    }

    /// @inheritdoc IUpdateLedger
    function submissionOf(uint256 taskId, uint32 baseVersion, address edge)
        external
        view
        returns (uint256)
    {
        return _submissions[taskId][baseVersion][edge];
    }

    /// @inheritdoc IUpdateLedger
    function registry() external view returns (address) {
        return address(_registry);
    }

    /// @inheritdoc IUpdateLedger
    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _activeTask(uint256 taskId) private view returns (ITaskRegistry.Task memory record) {
        record = _registry.task(taskId);
        ITaskRegistry.TaskState current = _registry.state(taskId);
        if (current != ITaskRegistry.TaskState.Open && current != ITaskRegistry.TaskState.Training) {
            revert UpdateLedgerUnexpectedTaskState(taskId, current);
        }
    }

    function _checkBase(uint256 taskId, uint32 baseVersion, uint32 maxStaleness) private view {
        uint32 latest = uint32(_globalModels[taskId].length);
        if (baseVersion > latest) revert UpdateLedgerFutureBase(taskId, baseVersion, latest);
        if (uint256(baseVersion) + maxStaleness < latest) {
            revert UpdateLedgerStaleBase(taskId, baseVersion, latest, maxStaleness);
        }
    }

    function _consumeUpdates(
        uint256 taskId,
        uint32 version,
        uint32 maxStaleness,
        uint256[] calldata updateIds
    ) private {
        uint256 previous = 0;
        for (uint256 i = 0; i < updateIds.length; ++i) {
            uint256 updateId = updateIds[i];
            if (updateId == 0 || updateId > _updates.length) revert UpdateLedgerUnknownUpdate(updateId);
            if (updateId <= previous) revert UpdateLedgerUnorderedUpdates(previous, updateId);
            Update storage entry = _updates[updateId - 1];
            if (entry.taskId != taskId) revert UpdateLedgerUpdateNotInTask(updateId, taskId);
            if (uint256(entry.baseVersion) + maxStaleness + 1 < version) {
                revert UpdateLedgerStaleUpdate(updateId, entry.baseVersion, version);
            }
            if (entry.aggregatedIn != 0) {
                revert UpdateLedgerUpdateAlreadyAggregated(updateId, entry.aggregatedIn);
            }
            entry.aggregatedIn = version;
            previous = updateId;
        }
    }

    function _checkPayloadSize(uint256 size) private pure {
        if (size == 0 || size > MAX_PAYLOAD_SIZE) {
            revert UpdateLedgerInvalidPayloadSize(size, MAX_PAYLOAD_SIZE);
        }
    }

    function _checkRole(bytes32 role) private view {
        if (!_consortium.hasRole(role, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, role);
        }
    }
}
