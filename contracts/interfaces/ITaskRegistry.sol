// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev Largest initial, update or global model payload in bytes: geth refuses transactions
/// over 128 KiB, and 4 KiB are left for the ABI encoding, the spec JSON and the envelope.
uint256 constant MAX_PAYLOAD_SIZE_BYTES = 124 * 1024;

/**
 * @title ITaskRegistry
 * @notice Training tasks: published once, immutable, with a lifecycle derived from the
 * global model versions committed on the update ledger.
 * @dev The task spec JSON and the initial model are calldata of {publishTask}; only their
 * keccak-256 digests and the fields the contracts enforce are stored.
 */
interface ITaskRegistry {
    /**
     * @dev Derived lifecycle: Open (only version 0), Training (1..rounds-1 committed),
     * Finished (version `rounds` committed), Cancelled (by its publisher), Expired (deadline
     * passed before it finished). Cancelled and Finished take precedence over Expired.
     */
    enum TaskState {
        Open,
        Training,
        Finished,
        Cancelled,
        Expired
    }

    /// @dev What the registry stores about a task.
    struct Task {
        bytes32 specDigest;
        bytes32 initialModelDigest;
        address publisher;
        uint32 rounds;
        uint32 minUpdates;
        uint32 maxStaleness;
        uint64 deadline;
        uint64 publishedBlock;
        bool cancelled;
        uint64 epsilonBudgetMicro;
        uint32 aggregatorQuorum;
        uint64 maxExamples;
    }

    /// @dev The fields of a task spec that the contracts enforce (all in the spec JSON too).
    /// `epsilonBudgetMicro` is the privacy budget per edge in micro-epsilon (0: unlimited);
    /// `aggregatorQuorum` is how many aggregators must commit the same global model;
    /// `maxExamples` is the most examples one update may claim (FedAvg weighs by it). A task
    /// with an epsilon budget is a DP task: its updates must declare a privacy spend > 0.
    struct TaskParams {
        uint32 rounds;
        uint32 minUpdates;
        uint32 maxStaleness;
        uint64 deadline;
        uint64 epsilonBudgetMicro;
        uint32 aggregatorQuorum;
        uint64 maxExamples;
    }

    /// @dev No task has id `taskId`.
    error TaskRegistryUnknownTask(uint256 taskId);

    /// @dev `account` is not the publisher of task `taskId`.
    error TaskRegistryNotPublisher(uint256 taskId, address account);

    /// @dev Task `taskId` is in state `current`, which does not allow the operation.
    error TaskRegistryUnexpectedState(uint256 taskId, TaskState current);

    /// @dev A task needs at least one round.
    error TaskRegistryInvalidRounds(uint32 rounds);

    /// @dev A round needs at least one update.
    error TaskRegistryInvalidMinUpdates(uint32 minUpdates);

    /// @dev `deadline` is not zero and not in the future.
    error TaskRegistryInvalidDeadline(uint64 deadline);

    /// @dev A global model needs at least one aggregator's commit.
    error TaskRegistryInvalidAggregatorQuorum(uint32 aggregatorQuorum);

    /// @dev An update must be allowed at least one example.
    error TaskRegistryInvalidMaxExamples(uint64 maxExamples);

    /// @dev The task spec JSON is empty.
    error TaskRegistryEmptySpec();

    /// @dev The initial model is empty or larger than `maxSize` bytes.
    error TaskRegistryInvalidInitialModelSize(uint256 size, uint256 maxSize);

    /// @dev The update ledger is already set to `ledger`.
    error TaskRegistryLedgerAlreadySet(address ledger);

    /// @dev `ledger` is not a usable ledger address.
    error TaskRegistryInvalidLedger(address ledger);

    /// @dev The consortium's bootstrap ended: the admin can no longer wire a ledger.
    error TaskRegistryBootstrapEnded();

    /// @notice Task `taskId` was published by `publisher`.
    event TaskPublished(
        uint256 indexed taskId,
        address indexed publisher,
        bytes32 specDigest,
        bytes32 initialModelDigest,
        uint32 rounds,
        uint32 minUpdates,
        uint32 maxStaleness,
        uint64 deadline,
        uint64 epsilonBudgetMicro,
        uint32 aggregatorQuorum
    );

    /// @notice Task `taskId` was cancelled by its publisher.
    event TaskCancelled(uint256 indexed taskId, address indexed publisher);

    /// @notice The update ledger that holds the global model versions was set.
    event LedgerSet(address indexed ledger);

    /**
     * @notice Publishes a task; its spec JSON and initial model stay in this call's calldata.
     * @dev Requirements:
     * - the caller has the consortium's PUBLISHER_ROLE;
     * - `specJson` is non-empty, `rounds` > 0, `minUpdates` > 0, `aggregatorQuorum` > 0,
     *   `maxExamples` > 0;
     * - `initialModel` is non-empty and at most MAX_PAYLOAD_SIZE bytes;
     * - `deadline` is 0 (none) or later than the current block timestamp.
     *
     * Emits a {TaskPublished} event.
     */
    function publishTask(
        bytes calldata specJson,
        TaskParams calldata params,
        bytes calldata initialModel
    ) external returns (uint256 taskId);

    /**
     * @notice Cancels task `taskId`.
     * @dev Requirements:
     * - the task exists and the caller is its publisher;
     * - the task is Open or Training.
     *
     * Emits a {TaskCancelled} event.
     */
    function cancelTask(uint256 taskId) external;

    /**
     * @notice Sets, once, the update ledger whose versions drive {state}.
     * @dev Requirements:
     * - the caller has the consortium's DEFAULT_ADMIN_ROLE;
     * - the consortium is still bootstrapping;
     * - `ledger` is non-zero and no ledger is set yet.
     *
     * Emits a {LedgerSet} event.
     */
    function setLedger(address ledger) external;

    /**
     * @notice The stored record of task `taskId`.
     * @dev Requirements: the task exists. Emits nothing.
     */
    function task(uint256 taskId) external view returns (Task memory);

    /**
     * @notice The derived lifecycle state of task `taskId`.
     * @dev Requirements: the task exists. Emits nothing.
     */
    function state(uint256 taskId) external view returns (TaskState);

    /**
     * @notice Number of published tasks; ids run from 1 to this number.
     * @dev Requirements: none. Emits nothing.
     */
    function taskCount() external view returns (uint256);

    /**
     * @notice The consortium whose roles this registry checks.
     * @dev Requirements: none. Emits nothing.
     */
    function consortium() external view returns (address);

    /**
     * @notice The update ledger, or the zero address before {setLedger}.
     * @dev Requirements: none. Emits nothing.
     */
    function ledger() external view returns (address);
}
