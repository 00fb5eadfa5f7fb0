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
    mapping(uint256 taskId => mapping(address edge => uint64)) private _epsilonSpent;
    mapping(address edge => Reputation) private _reputation;
    mapping(uint256 updateId => uint32 version) private _rejectedIn;
    // Filled through a storage pointer in _recordCommit, which slither does not follow.
    // slither-disable-next-line uninitialized-state
    mapping(uint256 taskId => mapping(uint32 version => Commit[])) private _commits;
    mapping(uint256 taskId => mapping(uint32 version => mapping(bytes32 commitHash => uint256)))
        private _agreeing;
    mapping(uint256 taskId => mapping(uint32 version => mapping(address aggregator => bool)))
        private _committed;
    mapping(uint256 taskId => mapping(uint32 version => bool)) private _conflicted;
    // Candidate sets (see {IUpdateLedger-commitGlobalModel}): each update's position among its
    // task's updates (1-based), how many of a task's updates final versions consumed (a prefix),
    // and the last update id of each version's candidate set, fixed by its first commit.
    mapping(uint256 updateId => uint256) private _taskOrdinal;
    mapping(uint256 taskId => uint256) private _consumed;
    mapping(uint256 taskId => mapping(uint32 version => uint256)) private _cutoff;
    mapping(uint256 taskId => mapping(address edge => uint64)) private _contributions;

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
        if (numExamples > record.maxExamples) {
            revert UpdateLedgerTooManyExamples(numExamples, record.maxExamples);
        }
        _checkBase(taskId, baseVersion, record.maxStaleness);
        if (_submissions[taskId][baseVersion][msg.sender] != 0) {
            revert UpdateLedgerDuplicateSubmission(taskId, baseVersion, msg.sender);
        }
        _spendEpsilon(taskId, record.epsilonBudgetMicro, epsilonMicro);

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
        uint256 ordinal = _taskUpdateCount[taskId] + 1;
        _taskUpdateCount[taskId] = ordinal;
        _taskOrdinal[updateId] = ordinal;
        Reputation storage facts = _reputation[msg.sender];
        facts.submitted += 1;
        if (baseVersion < _globalModels[taskId].length) facts.late += 1;
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
        uint256[] calldata rejectedIds,
        bytes calldata payload
    ) external {
        _checkRole(_consortium.AGGREGATOR_ROLE());
        ITaskRegistry.Task memory record = _activeTask(taskId);
        uint32 expected = uint32(_globalModels[taskId].length) + 1;
        if (version != expected) revert UpdateLedgerUnexpectedVersion(taskId, version, expected);
        if (_committed[taskId][version][msg.sender]) {
            revert UpdateLedgerAlreadyCommitted(taskId, version, msg.sender);
        }
        _checkPayloadSize(payload.length);
        _checkLists(taskId, version, record, updateIds, rejectedIds);

        bytes32 digest = keccak256(payload);
        bytes32 commitHash = keccak256(abi.encode(digest, updateIds, rejectedIds));
        uint256 agreeing = _recordCommit(taskId, version, digest, commitHash);
        emit GlobalModelCommitted(taskId, version, digest, msg.sender, updateIds.length);
        if (agreeing >= record.aggregatorQuorum) {
            _finalize(taskId, version, digest, updateIds, rejectedIds);
            emit GlobalModelFinalized(taskId, version, digest, msg.sender, agreeing);
        }
    }

    /// @inheritdoc IUpdateLedger
    function latestVersion(uint256 taskId) external view returns (uint32) {
        // Called only for its TaskRegistryUnknownTask revert; the record itself is not needed.
        // slither-disable-next-line unused-return
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
    function commits(uint256 taskId, uint32 version) external view returns (Commit[] memory) {
        return _commits[taskId][version];
    }

    /// @inheritdoc IUpdateLedger
    function conflicted(uint256 taskId, uint32 version) external view returns (bool) {
        return _conflicted[taskId][version];
    }

    /// @inheritdoc IUpdateLedger
    function candidateCutoff(uint256 taskId, uint32 version) external view returns (uint256) {
        return _cutoff[taskId][version];
    }

    /// @inheritdoc IUpdateLedger
    function contributions(uint256 taskId, address edge) external view returns (uint64) {
        return _contributions[taskId][edge];
    }

    /// @inheritdoc IUpdateLedger
    function epsilonSpent(uint256 taskId, address edge) external view returns (uint64) {
        return _epsilonSpent[taskId][edge];
    }

    /// @inheritdoc IUpdateLedger
    function reputation(address edge) external view returns (Reputation memory) {
        return _reputation[edge];
    }

    /// @inheritdoc IUpdateLedger
    function reputationScore(address edge) external view returns (uint256) {
        Reputation memory facts = _reputation[edge];
        uint256 seen = uint256(facts.accepted) + facts.rejected + facts.late + 1;
        return (uint256(facts.accepted) + 1) * 10_000 / seen;
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

    function _spendEpsilon(uint256 taskId, uint64 budget, uint64 epsilonMicro) private {
        if (budget != 0 && epsilonMicro == 0) revert UpdateLedgerZeroPrivacySpend(taskId, budget);
        uint64 spent = _epsilonSpent[taskId][msg.sender];
        if (budget != 0 && uint256(spent) + epsilonMicro > budget) {
            revert UpdateLedgerPrivacyBudgetExceeded(taskId, msg.sender, spent, epsilonMicro, budget);
        }
        if (epsilonMicro != 0) _epsilonSpent[taskId][msg.sender] = spent + epsilonMicro;
    }

    function _checkUpdates(
        uint256 taskId,
        uint32 version,
        uint32 maxStaleness,
        uint256[] calldata updateIds
    ) private view {
        uint256 previous = 0;
        for (uint256 i = 0; i < updateIds.length; ++i) {
            uint256 updateId = updateIds[i];
            Update storage entry = _usableUpdate(taskId, previous, updateId);
            if (uint256(entry.baseVersion) + maxStaleness + 1 < version) {
                revert UpdateLedgerStaleUpdate(updateId, entry.baseVersion, version);
            }
            previous = updateId;
        }
    }

    function _checkRejected(
        uint256 taskId,
        uint256[] calldata updateIds,
        uint256[] calldata rejectedIds
    ) private view {
        uint256 previous = 0;
        uint256 cursor = 0;
        for (uint256 i = 0; i < rejectedIds.length; ++i) {
            uint256 updateId = rejectedIds[i];
            _usableUpdate(taskId, previous, updateId);
            // both lists increase: advance through updateIds to find a shared id
            while (cursor < updateIds.length && updateIds[cursor] < updateId) ++cursor;
            if (cursor < updateIds.length && updateIds[cursor] == updateId) {
                revert UpdateLedgerRejectedAndAggregated(updateId);
            }
            previous = updateId;
        }
    }

    function _usableUpdate(uint256 taskId, uint256 previous, uint256 updateId)
        private
        view
        returns (Update storage entry)
    {
        if (updateId == 0 || updateId > _updates.length) revert UpdateLedgerUnknownUpdate(updateId);
        if (updateId <= previous) revert UpdateLedgerUnorderedUpdates(previous, updateId);
        entry = _updates[updateId - 1];
        if (entry.taskId != taskId) revert UpdateLedgerUpdateNotInTask(updateId, taskId);
        if (entry.aggregatedIn != 0) {
            revert UpdateLedgerUpdateAlreadyAggregated(updateId, entry.aggregatedIn);
        }
        if (_rejectedIn[updateId] != 0) {
            revert UpdateLedgerUpdateAlreadyRejected(updateId, _rejectedIn[updateId]);
        }
    }

    function _checkLists(
        uint256 taskId,
        uint32 version,
        ITaskRegistry.Task memory record,
        uint256[] calldata updateIds,
        uint256[] calldata rejectedIds
    ) private {
        _checkUpdates(taskId, version, record.maxStaleness, updateIds);
        _checkRejected(taskId, updateIds, rejectedIds);
        uint256 edges = _distinctEdges(updateIds, record.minUpdates);
        if (edges < record.minUpdates) {
            revert UpdateLedgerTooFewEdges(taskId, edges, record.minUpdates);
        }
        _checkCandidateSet(taskId, version, updateIds, rejectedIds);
    }

    /// @dev Distinct edges among `updateIds` (all existing), counting no further than `enough`.
    function _distinctEdges(uint256[] calldata updateIds, uint32 enough)
        private
        view
        returns (uint256 count)
    {
        address[] memory seen = new address[](updateIds.length);
        for (uint256 i = 0; i < updateIds.length && count < enough; ++i) {
            address edge = _updates[updateIds[i] - 1].edge;
            bool fresh = true;
            for (uint256 j = 0; j < count && fresh; ++j) {
                fresh = seen[j] != edge;
            }
            if (fresh) seen[count++] = edge;
        }
    }

    /// @dev The listed updates (aggregated and rejected, all of the task and unconsumed) are
    /// exactly the task's unconsumed updates up to the last listed id, the version's cut-off,
    /// which must equal the cut-off its first commit fixed. Final versions consume a prefix of
    /// the task's updates, so every unconsumed update comes after `_consumed[taskId]`.
    function _checkCandidateSet(
        uint256 taskId,
        uint32 version,
        uint256[] calldata updateIds,
        uint256[] calldata rejectedIds
    ) private {
        uint256 last = updateIds[updateIds.length - 1];
        if (rejectedIds.length != 0 && rejectedIds[rejectedIds.length - 1] > last) {
            last = rejectedIds[rejectedIds.length - 1];
        }
        uint256 fixedCutoff = _cutoff[taskId][version];
        if (fixedCutoff == 0) {
            _cutoff[taskId][version] = last;
        } else if (fixedCutoff != last) {
            revert UpdateLedgerCutoffMismatch(taskId, version, last, fixedCutoff);
        }
        uint256 candidates = _taskOrdinal[last] - _consumed[taskId];
        uint256 listed = updateIds.length + rejectedIds.length;
        if (listed != candidates) {
            revert UpdateLedgerIncompleteCandidateSet(taskId, version, listed, candidates);
        }
    }

    function _recordCommit(uint256 taskId, uint32 version, bytes32 digest, bytes32 commitHash)
        private
        returns (uint256 agreeing)
    {
        Commit[] storage existing = _commits[taskId][version];
        if (existing.length != 0 && existing[0].commitHash != commitHash) {
            _conflicted[taskId][version] = true;
            emit GlobalModelConflict(taskId, version, msg.sender, digest, existing[0].digest);
        }
        existing.push(Commit(digest, commitHash, msg.sender, uint64(block.number)));
        _committed[taskId][version][msg.sender] = true;
        agreeing = _agreeing[taskId][version][commitHash] + 1;
        _agreeing[taskId][version][commitHash] = agreeing;
    }

    function _finalize(
        uint256 taskId,
        uint32 version,
        bytes32 digest,
        uint256[] calldata updateIds,
        uint256[] calldata rejectedIds
    ) private {
        _globalModels[taskId].push(GlobalModel(digest, msg.sender, uint64(block.number), updateIds));
        _consumed[taskId] = _taskOrdinal[_cutoff[taskId][version]];
        for (uint256 i = 0; i < updateIds.length; ++i) {
            Update storage entry = _updates[updateIds[i] - 1];
            entry.aggregatedIn = version;
            _reputation[entry.edge].accepted += 1;
            _contributions[taskId][entry.edge] += 1;
        }
        for (uint256 i = 0; i < rejectedIds.length; ++i) {
            _rejectedIn[rejectedIds[i]] = version;
            _reputation[_updates[rejectedIds[i] - 1].edge].rejected += 1;
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
