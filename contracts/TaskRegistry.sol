// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";
import {ITaskRegistry, MAX_PAYLOAD_SIZE_BYTES} from "./interfaces/ITaskRegistry.sol";
import {IUpdateLedger} from "./interfaces/IUpdateLedger.sol";

/**
 * @title TaskRegistry
 * @notice Publishes immutable training tasks and derives their lifecycle state.
 * @dev The latest global version lives only in the UpdateLedger; {state} reads it there, so
 * the lifecycle is derived and never stored twice.
 */
contract TaskRegistry is ITaskRegistry {
    uint256 public constant MAX_PAYLOAD_SIZE = MAX_PAYLOAD_SIZE_BYTES;
    bytes32 private constant _DEFAULT_ADMIN_ROLE = 0x00;

    IConsortium private immutable _consortium;
    IUpdateLedger private _ledger;
    Task[] private _tasks;

    /// @param consortium_ the consortium whose roles this registry checks.
    constructor(IConsortium consortium_) {
        _consortium = consortium_;
    }

    /// @inheritdoc ITaskRegistry
    function publishTask(
        bytes calldata specJson,
        TaskParams calldata params,
        bytes calldata initialModel
    ) external returns (uint256 taskId) {
        _checkRole(_consortium.PUBLISHER_ROLE());
        _checkParams(specJson.length, params, initialModel.length);
        _tasks.push(
            Task({
                specDigest: keccak256(specJson),
                initialModelDigest: keccak256(initialModel),
                publisher: msg.sender,
                rounds: params.rounds,
                minUpdates: params.minUpdates,
                maxStaleness: params.maxStaleness,
                deadline: params.deadline,
                publishedBlock: uint64(block.number),
                cancelled: false,
                epsilonBudgetMicro: params.epsilonBudgetMicro,
                aggregatorQuorum: params.aggregatorQuorum,
                maxExamples: params.maxExamples
            })
        );
        taskId = _tasks.length;
        _emitPublished(taskId, _tasks[taskId - 1]);
    }

    /// @inheritdoc ITaskRegistry
    function cancelTask(uint256 taskId) external {
        Task storage record = _task(taskId);
        if (record.publisher != msg.sender) revert TaskRegistryNotPublisher(taskId, msg.sender);
        TaskState current = _state(taskId, record);
        if (current != TaskState.Open && current != TaskState.Training) {
            revert TaskRegistryUnexpectedState(taskId, current);
        }
        record.cancelled = true;
        emit TaskCancelled(taskId, msg.sender);
    }

    /// @inheritdoc ITaskRegistry
    function setLedger(address ledger_) external {
        _checkRole(_DEFAULT_ADMIN_ROLE);
        if (!_consortium.bootstrapping()) revert TaskRegistryBootstrapEnded();
        if (address(_ledger) != address(0)) revert TaskRegistryLedgerAlreadySet(address(_ledger));
        if (ledger_ == address(0)) revert TaskRegistryInvalidLedger(ledger_);
        _ledger = IUpdateLedger(ledger_);
        emit LedgerSet(ledger_);
    }

    /// @inheritdoc ITaskRegistry
    function task(uint256 taskId) external view returns (Task memory) {
        return _task(taskId);
    }

    /// @inheritdoc ITaskRegistry
    function state(uint256 taskId) external view returns (TaskState) {
        return _state(taskId, _task(taskId));
    }

    /// @inheritdoc ITaskRegistry
    function taskCount() external view returns (uint256) {
        return _tasks.length;
    }

    /// @inheritdoc ITaskRegistry
    function consortium() external view returns (address) {
        return address(_consortium);
    }

    /// @inheritdoc ITaskRegistry
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    function _checkParams(uint256 specSize, TaskParams calldata params, uint256 modelSize)
        private
        view
    {
        if (specSize == 0) revert TaskRegistryEmptySpec();
        if (params.rounds == 0) revert TaskRegistryInvalidRounds(params.rounds);
        if (params.minUpdates == 0) revert TaskRegistryInvalidMinUpdates(params.minUpdates);
        if (params.aggregatorQuorum == 0) {
            revert TaskRegistryInvalidAggregatorQuorum(params.aggregatorQuorum);
        }
        if (params.maxExamples == 0) revert TaskRegistryInvalidMaxExamples(params.maxExamples);
        if (modelSize == 0 || modelSize > MAX_PAYLOAD_SIZE) {
            revert TaskRegistryInvalidInitialModelSize(modelSize, MAX_PAYLOAD_SIZE);
        }
        // Deadlines are coarse (hours or days); a validator's few seconds of skew do not matter.
        // slither-disable-next-line timestamp
        if (params.deadline != 0 && params.deadline <= block.timestamp) {
            revert TaskRegistryInvalidDeadline(params.deadline);
        }
    }

    function _emitPublished(uint256 taskId, Task storage record) private {
        emit TaskPublished(
            taskId,
            record.publisher,
            record.specDigest,
            record.initialModelDigest,
            record.rounds,
            record.minUpdates,
            record.maxStaleness,
            record.deadline,
            record.epsilonBudgetMicro,
            record.aggregatorQuorum
        );
    }

    function _task(uint256 taskId) private view returns (Task storage) {
        if (taskId == 0 || taskId > _tasks.length) revert TaskRegistryUnknownTask(taskId);
        return _tasks[taskId - 1];
    }

    function _state(uint256 taskId, Task storage record) private view returns (TaskState) {
        if (record.cancelled) return TaskState.Cancelled;
        uint32 latest = address(_ledger) == address(0) ? 0 : _ledger.latestVersion(taskId);
        if (latest >= record.rounds) return TaskState.Finished;
        if (record.deadline != 0 && block.timestamp > record.deadline) return TaskState.Expired;
        return latest == 0 ? TaskState.Open : TaskState.Training;
    }

    function _checkRole(bytes32 role) private view {
        if (!_consortium.hasRole(role, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, role);
        }
    }
}
