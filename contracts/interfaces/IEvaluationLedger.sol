// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev Metrics are fractions in [0, 1] stored as micro units (1.0 == METRIC_SCALE_MICRO).
uint32 constant METRIC_SCALE_MICRO = 1_000_000;
/// @dev `secondaryMicro` value meaning "no second metric" (e.g. AUC of a one-class test set).
uint32 constant NO_METRIC = type(uint32).max;

/**
 * @title IEvaluationLedger
 * @notice Per-site evaluations of final global models: each edge operator reports one metric
 * (and optionally a second one) of one version of a task, measured on its own test split.
 * Only edges that contributed to the task evaluate it, and never its version 0.
 * @dev The acceptance decision (pending / accepted / rejected) is derived off chain by
 * `fednode.aggregator.acceptance.version_acceptance` from these evaluations and the task's
 * `metric_floor`, `acceptance_rule` and `acceptance_quorum` (a quorum of the contributing
 * edges, so no single edge's report accepts or vetoes a version): the floor lives in the task spec JSON, which is calldata whose keccak-256
 * digest TaskRegistry stores, so a contract cannot read it without trusting a re-submitted
 * copy. Everyone can recompute the gate from the ledger alone, like every other derived fact.
 */
interface IEvaluationLedger {
    /// @dev One edge's evaluation of version `version` of a task (the task is the storage key).
    struct Evaluation {
        uint32 version;
        address edge;
        uint32 metricMicro;
        uint32 secondaryMicro;
        uint64 numExamples;
        uint64 blockNumber;
        uint64 evaluationId;
    }

    /// @dev Version `version` of task `taskId` is not a final global model (latest is
    /// `latestVersion`).
    error EvaluationLedgerUnknownVersion(uint256 taskId, uint32 version, uint32 latestVersion);

    /// @dev Version 0 of task `taskId` is the publisher's initial model; it is not evaluated.
    error EvaluationLedgerInitialVersion(uint256 taskId);

    /// @dev `edge` has no update aggregated into a final version of task `taskId`
    /// ({IUpdateLedger-contributions}), so it does not evaluate it.
    error EvaluationLedgerNotContributor(uint256 taskId, address edge);

    /// @dev `edge` already evaluated version `version` of task `taskId`.
    error EvaluationLedgerDuplicateEvaluation(uint256 taskId, uint32 version, address edge);

    /// @dev A metric of `valueMicro` is above `maxMicro` (1.0) and is not NO_METRIC.
    error EvaluationLedgerMetricOutOfRange(uint32 valueMicro, uint32 maxMicro);

    /// @dev An evaluation must count at least one test example.
    error EvaluationLedgerZeroExamples();

    /// @notice `edge` evaluated version `version` of task `taskId` on `numExamples` test
    /// examples: metric `metricMicro`, second metric `secondaryMicro` (NO_METRIC if none).
    event EvaluationSubmitted(
        uint256 evaluationId,
        uint256 indexed taskId,
        uint32 indexed version,
        address indexed edge,
        uint32 metricMicro,
        uint32 secondaryMicro,
        uint64 numExamples
    );

    /**
     * @notice Records the caller's evaluation of final global model `version` of `taskId`.
     * @dev Requirements, checked in this order:
     * - the caller has the consortium's EDGE_ROLE;
     * - the task exists (else TaskRegistryUnknownTask);
     * - `version` is not 0 (the initial model; {EvaluationLedgerInitialVersion});
     * - `version` <= the task's latest final version; any task state, so a Finished task's
     *   last version can be evaluated;
     * - the caller contributed to the task: at least one of its updates was aggregated into a
     *   final version of it ({EvaluationLedgerNotContributor});
     * - `metricMicro` <= METRIC_SCALE_MICRO;
     * - `secondaryMicro` <= METRIC_SCALE_MICRO or == NO_METRIC;
     * - `numExamples` > 0;
     * - the caller has not evaluated (`taskId`, `version`) before.
     *
     * Emits an {EvaluationSubmitted} event.
     */
    function submitEvaluation(
        uint256 taskId,
        uint32 version,
        uint32 metricMicro,
        uint32 secondaryMicro,
        uint64 numExamples
    ) external returns (uint256 evaluationId);

    /// @notice Every evaluation of task `taskId`, in submission order (reverts for an unknown task).
    function taskEvaluations(uint256 taskId) external view returns (Evaluation[] memory);

    /// @notice The evaluations of version `version` of task `taskId`, in submission order.
    function evaluations(uint256 taskId, uint32 version) external view returns (Evaluation[] memory);

    /// @notice The id of `edge`'s evaluation of (`taskId`, `version`), 0 if none.
    function evaluationOf(uint256 taskId, uint32 version, address edge)
        external
        view
        returns (uint256);

    /// @notice Number of evaluations over all tasks (ids are 1..count).
    function evaluationCount() external view returns (uint256);

    /// @notice The UpdateLedger whose final versions are evaluated.
    function ledger() external view returns (address);

    /// @notice The Consortium whose EDGE_ROLE may submit evaluations.
    function consortium() external view returns (address);
}
