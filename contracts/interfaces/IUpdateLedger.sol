// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ITaskRegistry} from "./ITaskRegistry.sol";

/**
 * @title IUpdateLedger
 * @notice Model updates from edge operators and the global models aggregated from them.
 * @dev Payloads (canonical safetensors bytes) are calldata only; storage keeps their
 * keccak-256 digest and metadata. Ledger order is update id order.
 */
interface IUpdateLedger {
    /// @dev What the ledger stores about an update. `aggregatedIn` is 0 until a version uses it.
    struct Update {
        uint256 taskId;
        address edge;
        uint32 baseVersion;
        uint64 numExamples;
        bytes32 digest;
        uint64 epsilonMicro;
        uint32 payloadSize;
        uint64 blockNumber;
        uint32 aggregatedIn;
    }

    /// @dev What the ledger stores about a global model version.
    struct GlobalModel {
        bytes32 digest;
        address aggregator;
        uint64 blockNumber;
        uint256[] updateIds;
    }

    /// @dev One aggregator's commit of a version; `commitHash` binds digest, updates, rejections.
    struct Commit {
        bytes32 digest;
        bytes32 commitHash;
        address aggregator;
        uint64 blockNumber;
    }

    /// @dev Ledger facts about an edge over all tasks: updates submitted, aggregated into a
    /// final version, reported as filtered out by the aggregators, and submitted on a base
    /// older than the latest version.
    struct Reputation {
        uint64 submitted;
        uint64 accepted;
        uint64 rejected;
        uint64 late;
    }

    /// @dev Task `taskId` is in state `current`, which accepts no updates or global models.
    error UpdateLedgerUnexpectedTaskState(uint256 taskId, ITaskRegistry.TaskState current);

    /// @dev A payload is empty or larger than `maxSize` bytes.
    error UpdateLedgerInvalidPayloadSize(uint256 size, uint256 maxSize);

    /// @dev An update must be trained on at least one example.
    error UpdateLedgerZeroExamples();

    /// @dev An update claims `numExamples`, more than its task's `maxExamples`.
    error UpdateLedgerTooManyExamples(uint64 numExamples, uint64 maxExamples);

    /// @dev An update of task `taskId`, a DP task (epsilon budget `budget` > 0), declares no
    /// privacy spend.
    error UpdateLedgerZeroPrivacySpend(uint256 taskId, uint64 budget);

    /// @dev `baseVersion` is newer than the task's latest global version.
    error UpdateLedgerFutureBase(uint256 taskId, uint32 baseVersion, uint32 latestVersion);

    /// @dev `baseVersion` is more than `maxStaleness` versions behind the latest.
    error UpdateLedgerStaleBase(
        uint256 taskId, uint32 baseVersion, uint32 latestVersion, uint32 maxStaleness
    );

    /// @dev `edge` already submitted an update on `baseVersion` of task `taskId`.
    error UpdateLedgerDuplicateSubmission(uint256 taskId, uint32 baseVersion, address edge);

    /// @dev The next version of task `taskId` is `expected`, not `version`.
    error UpdateLedgerUnexpectedVersion(uint256 taskId, uint32 version, uint32 expected);

    /// @dev A global model of task `taskId` aggregates updates of at least `minUpdates`
    /// distinct edges; the commit's aggregated updates come from `edges` (counted up to
    /// `minUpdates`). One edge submitting on several base versions cannot fill a version.
    error UpdateLedgerTooFewEdges(uint256 taskId, uint256 edges, uint32 minUpdates);

    /// @dev The first commit of version `version` of task `taskId` fixed its candidate set to
    /// the updates up to id `cutoffUpdateId`; this commit's last listed update is `lastUpdateId`.
    error UpdateLedgerCutoffMismatch(
        uint256 taskId, uint32 version, uint256 lastUpdateId, uint256 cutoffUpdateId
    );

    /// @dev A commit of version `version` of task `taskId` lists `listed` updates (aggregated
    /// plus rejected); its candidate set, the task's unconsumed updates up to the commit's last
    /// listed id, holds `candidates`.
    error UpdateLedgerIncompleteCandidateSet(
        uint256 taskId, uint32 version, uint256 listed, uint256 candidates
    );

    /// @dev No update has id `updateId`.
    error UpdateLedgerUnknownUpdate(uint256 updateId);

    /// @dev Update ids must be strictly increasing; `updateId` follows `previousId`.
    error UpdateLedgerUnorderedUpdates(uint256 previousId, uint256 updateId);

    /// @dev Update `updateId` belongs to another task than `taskId`.
    error UpdateLedgerUpdateNotInTask(uint256 updateId, uint256 taskId);

    /// @dev Update `updateId` on `baseVersion` is too stale to be aggregated into `version`.
    error UpdateLedgerStaleUpdate(uint256 updateId, uint32 baseVersion, uint32 version);

    /// @dev Update `updateId` is already aggregated into global version `version`.
    error UpdateLedgerUpdateAlreadyAggregated(uint256 updateId, uint32 version);

    /// @dev Update `updateId` was reported as rejected for version `version` already.
    error UpdateLedgerUpdateAlreadyRejected(uint256 updateId, uint32 version);

    /// @dev Update `updateId` is both aggregated and reported as rejected in one commit.
    error UpdateLedgerRejectedAndAggregated(uint256 updateId);

    /// @dev `edge` has spent `spent` of its `budget` micro-epsilon on task `taskId` and asks
    /// for `requested` more.
    error UpdateLedgerPrivacyBudgetExceeded(
        uint256 taskId, address edge, uint64 spent, uint64 requested, uint64 budget
    );

    /// @dev `aggregator` already committed version `version` of task `taskId`.
    error UpdateLedgerAlreadyCommitted(uint256 taskId, uint32 version, address aggregator);

    /// @dev Task `taskId` has no global version `version` yet.
    error UpdateLedgerUnknownVersion(uint256 taskId, uint32 version);

    /// @notice `edge` submitted update `updateId` on `baseVersion` of task `taskId`.
    event UpdateSubmitted(
        uint256 updateId,
        uint256 indexed taskId,
        uint32 indexed baseVersion,
        address indexed edge,
        bytes32 digest,
        uint64 numExamples,
        uint64 epsilonMicro,
        uint32 payloadSize
    );

    /// @notice `aggregator` committed global model `version` of task `taskId`.
    event GlobalModelCommitted(
        uint256 indexed taskId,
        uint32 indexed version,
        bytes32 digest,
        address indexed aggregator,
        uint256 updateCount
    );

    /// @notice Version `version` of task `taskId` is final: `commits` aggregators (at least
    /// the task's quorum) committed `digest` over the same updates; `aggregator` completed it.
    event GlobalModelFinalized(
        uint256 indexed taskId,
        uint32 indexed version,
        bytes32 digest,
        address indexed aggregator,
        uint256 commits
    );

    /// @notice `aggregator`'s commit of `version` disagrees with the first commit of it.
    event GlobalModelConflict(
        uint256 indexed taskId,
        uint32 indexed version,
        address indexed aggregator,
        bytes32 digest,
        bytes32 firstDigest
    );

    /**
     * @notice Submits one model update of the caller's devices; `payload` stays in calldata.
     * @dev Requirements, checked in this order:
     * - the caller has the consortium's EDGE_ROLE;
     * - the task exists and is Open or Training;
     * - `payload` is non-empty and at most MAX_PAYLOAD_SIZE bytes;
     * - 0 < `numExamples` <= the task's maxExamples;
     * - latest - maxStaleness <= `baseVersion` <= latest;
     * - the caller has not submitted on (`taskId`, `baseVersion`) before;
     * - the task's epsilon budget is 0 (unlimited), or `epsilonMicro` > 0 (a DP update spends
     *   something) and the caller's spend on this task plus `epsilonMicro` stays within it.
     *
     * Emits an {UpdateSubmitted} event.
     */
    function submitUpdate(
        uint256 taskId,
        uint32 baseVersion,
        uint64 numExamples,
        uint64 epsilonMicro,
        bytes calldata payload
    ) external returns (uint256 updateId);

    /**
     * @notice Commits global model `version` of task `taskId`, aggregated from `updateIds`
     * after the robust filter dropped `rejectedIds`. The version becomes final once the
     * task's `aggregatorQuorum` aggregators committed the same digest, updates and rejections.
     *
     * Candidate set. The candidate set of a version is every update of the task that no final
     * version aggregated or rejected, up to and including a cut-off update id; a commit lists
     * all of it, each update either in `updateIds` or in `rejectedIds` (an update too stale to
     * aggregate must be rejected). The first commit of a version fixes its cut-off (its largest
     * listed id); every later commit of the version must list the same candidate set, so an
     * update that lands between two aggregators' reads cannot split them: the later one is
     * refused with {UpdateLedgerCutoffMismatch} before it is recorded, reads the cut-off
     * ({candidateCutoff}) and commits again over it. Final versions thus consume a prefix of
     * the task's updates.
     *
     * Conflicts. A commit whose digest, updates or rejections differ from the version's first
     * commit emits {GlobalModelConflict} and sets {conflicted}, but does not block the version:
     * it becomes final as soon as `aggregatorQuorum` commits agree on one (digest, updates,
     * rejections), whichever commit came first. An aggregator cannot withdraw or replace its
     * commit, so a garbage commit only costs its author's vote: with n aggregators and quorum
     * k, the version finalizes as long as k honest ones commit (liveness needs n - k >= the
     * number of faulty aggregators).
     * @dev Requirements, checked in this order:
     * - the caller has the consortium's AGGREGATOR_ROLE;
     * - the task exists and is Open or Training;
     * - `version` is the latest final version + 1 (hence at most `rounds`);
     * - the caller has not committed this version yet;
     * - `payload` is non-empty and at most MAX_PAYLOAD_SIZE bytes;
     * - `updateIds` each existing, strictly increasing, of this task, based on a version in
     *   [version - 1 - maxStaleness, version - 1], not aggregated or rejected before;
     * - `rejectedIds` strictly increasing, existing, of this task, not aggregated or rejected
     *   before, none of them in `updateIds`;
     * - `updateIds` come from at least `minUpdates` distinct edges ({UpdateLedgerTooFewEdges});
     * - the cut-off (largest id in either list) equals the one the version's first commit
     *   fixed, if any ({UpdateLedgerCutoffMismatch});
     * - the two lists together are exactly the candidate set up to the cut-off
     *   ({UpdateLedgerIncompleteCandidateSet}).
     *
     * Emits a {GlobalModelCommitted} event, a {GlobalModelConflict} event if it disagrees
     * with the first commit of the version, and {GlobalModelFinalized} when the quorum is met.
     */
    function commitGlobalModel(
        uint256 taskId,
        uint32 version,
        uint256[] calldata updateIds,
        uint256[] calldata rejectedIds,
        bytes calldata payload
    ) external;

    /**
     * @notice The latest committed global version of task `taskId` (0: only the initial model).
     * @dev Requirements: the task exists. Emits nothing.
     */
    function latestVersion(uint256 taskId) external view returns (uint32);

    /**
     * @notice Global model `version` of task `taskId`; version 0 is the initial model, with
     * the publisher as aggregator and the publishing block.
     * @dev Requirements: the task exists and `version` <= latest. Emits nothing.
     */
    function globalModel(uint256 taskId, uint32 version) external view returns (GlobalModel memory);

    /**
     * @notice The stored record of update `updateId`.
     * @dev Requirements: the update exists. Emits nothing.
     */
    function update(uint256 updateId) external view returns (Update memory);

    /**
     * @notice Number of updates over all tasks; ids run from 1 to this number.
     * @dev Requirements: none. Emits nothing.
     */
    function updateCount() external view returns (uint256);

    /**
     * @notice Number of updates of task `taskId`.
     * @dev Requirements: none. Emits nothing.
     */
    function taskUpdateCount(uint256 taskId) external view returns (uint256);

    /**
     * @notice The update `edge` submitted on `baseVersion` of task `taskId`, or 0.
     * @dev Requirements: none. Emits nothing.
     */
    function submissionOf(uint256 taskId, uint32 baseVersion, address edge)
        external
        view
        returns (uint256);

    /**
     * @notice Every commit of `version` of task `taskId` (final or not), in commit order.
     * @dev Requirements: none. Emits nothing.
     */
    function commits(uint256 taskId, uint32 version) external view returns (Commit[] memory);

    /**
     * @notice Whether some commit of `version` of task `taskId` disagreed with the first one.
     * @dev Requirements: none. Emits nothing.
     */
    function conflicted(uint256 taskId, uint32 version) external view returns (bool);

    /**
     * @notice The cut-off of `version` of task `taskId`: the largest update id its first
     * commit listed (0 while it has no commit). Its candidate set is every update of the task
     * up to this id that no earlier final version aggregated or rejected.
     * @dev Requirements: none. Emits nothing.
     */
    function candidateCutoff(uint256 taskId, uint32 version) external view returns (uint256);

    /**
     * @notice How many of `edge`'s updates final versions of task `taskId` aggregated; an
     * edge contributed to a task (and may evaluate it) when this is at least 1.
     * @dev Requirements: none. Emits nothing.
     */
    function contributions(uint256 taskId, address edge) external view returns (uint64);

    /**
     * @notice Micro-epsilon `edge` has spent on task `taskId`.
     * @dev Requirements: none. Emits nothing.
     */
    function epsilonSpent(uint256 taskId, address edge) external view returns (uint64);

    /**
     * @notice The ledger facts about `edge` (see {Reputation}).
     * @dev Requirements: none. Emits nothing.
     */
    function reputation(address edge) external view returns (Reputation memory);

    /**
     * @notice A weight in basis points from the ledger facts alone:
     * 10000 * (accepted + 1) / (accepted + rejected + late + 1); 10000 for a new edge.
     * @dev Requirements: none. Emits nothing.
     */
    function reputationScore(address edge) external view returns (uint256);

    /**
     * @notice The task registry this ledger belongs to.
     * @dev Requirements: none. Emits nothing.
     */
    function registry() external view returns (address);

    /**
     * @notice The consortium whose roles this ledger checks.
     * @dev Requirements: none. Emits nothing.
     */
    function consortium() external view returns (address);
}
