// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";
import {
    IEvaluationLedger, METRIC_SCALE_MICRO, NO_METRIC
} from "./interfaces/IEvaluationLedger.sol";
import {IUpdateLedger} from "./interfaces/IUpdateLedger.sol";

/**
 * @title EvaluationLedger
 * @notice Per-site evaluations of final global models, one per (task, version, edge).
 * @dev Kept apart from UpdateLedger (at its bytecode budget); it reads the latest final
 * version and the caller's contributions there. The acceptance gate over these evaluations is derived off chain from the
 * task's `metric_floor` (see {IEvaluationLedger}).
 */
contract EvaluationLedger is IEvaluationLedger {
    uint32 public constant METRIC_SCALE = METRIC_SCALE_MICRO;
    uint32 public constant NO_SECONDARY_METRIC = NO_METRIC;

    IConsortium private immutable _consortium;
    IUpdateLedger private immutable _ledger;

    uint64 private _count;
    mapping(uint256 taskId => Evaluation[]) private _evaluations;
    mapping(uint256 taskId => mapping(uint32 version => mapping(address edge => uint256)))
        private _submitted;

    /**
     * @param consortium_ the consortium whose EDGE_ROLE may submit.
     * @param ledger_ the update ledger whose final versions are evaluated.
     */
    constructor(IConsortium consortium_, IUpdateLedger ledger_) {
        _consortium = consortium_;
        _ledger = ledger_;
    }

    /// @inheritdoc IEvaluationLedger
    function submitEvaluation(
        uint256 taskId,
        uint32 version,
        uint32 metricMicro,
        uint32 secondaryMicro,
        uint64 numExamples
    ) external returns (uint256 evaluationId) {
        bytes32 edgeRole = _consortium.EDGE_ROLE();
        if (!_consortium.hasRole(edgeRole, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, edgeRole);
        }
        uint32 latest = _ledger.latestVersion(taskId);
        if (version == 0) revert EvaluationLedgerInitialVersion(taskId);
        if (version > latest) revert EvaluationLedgerUnknownVersion(taskId, version, latest);
        if (_ledger.contributions(taskId, msg.sender) == 0) {
            revert EvaluationLedgerNotContributor(taskId, msg.sender);
        }
        if (metricMicro > METRIC_SCALE_MICRO) {
            revert EvaluationLedgerMetricOutOfRange(metricMicro, METRIC_SCALE_MICRO);
        }
        if (secondaryMicro > METRIC_SCALE_MICRO && secondaryMicro != NO_METRIC) {
            revert EvaluationLedgerMetricOutOfRange(secondaryMicro, METRIC_SCALE_MICRO);
        }
        if (numExamples == 0) revert EvaluationLedgerZeroExamples();
        if (_submitted[taskId][version][msg.sender] != 0) {
            revert EvaluationLedgerDuplicateEvaluation(taskId, version, msg.sender);
        }

        uint64 id = _count + 1;
        _count = id;
        _evaluations[taskId].push(
            Evaluation({
                version: version,
                edge: msg.sender,
                metricMicro: metricMicro,
                secondaryMicro: secondaryMicro,
                numExamples: numExamples,
                blockNumber: uint64(block.number),
                evaluationId: id
            })
        );
        _submitted[taskId][version][msg.sender] = id;
        evaluationId = id;
        emit EvaluationSubmitted(
            id, taskId, version, msg.sender, metricMicro, secondaryMicro, numExamples
        );
    }

    /// @inheritdoc IEvaluationLedger
    function taskEvaluations(uint256 taskId) external view returns (Evaluation[] memory) {
        // Called only for its TaskRegistryUnknownTask revert.
        // slither-disable-next-line unused-return
        _ledger.latestVersion(taskId);
        return _evaluations[taskId];
    }

    /// @inheritdoc IEvaluationLedger
    function evaluations(uint256 taskId, uint32 version)
        external
        view
        returns (Evaluation[] memory selected)
    {
        // slither-disable-next-line unused-return
        _ledger.latestVersion(taskId);
        Evaluation[] storage all = _evaluations[taskId];
        uint256 count = 0;
        for (uint256 i = 0; i < all.length; ++i) {
            if (all[i].version == version) ++count;
        }
        selected = new Evaluation[](count);
        uint256 next = 0;
        for (uint256 i = 0; i < all.length; ++i) {
            if (all[i].version == version) selected[next++] = all[i];
        }
    }

    /// @inheritdoc IEvaluationLedger
    function evaluationOf(uint256 taskId, uint32 version, address edge)
        external
        view
        returns (uint256)
    {
        return _submitted[taskId][version][edge];
    }

    /// @inheritdoc IEvaluationLedger
    function evaluationCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IEvaluationLedger
    function ledger() external view returns (address) {
        return address(_ledger);
    }

    /// @inheritdoc IEvaluationLedger
    function consortium() external view returns (address) {
        return address(_consortium);
    }
}
