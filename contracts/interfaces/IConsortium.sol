// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/**
 * @title IConsortium
 * @notice Members and roles of a federated learning consortium, and the validator (Clique
 * signer) address of every edge operator.
 * @dev Roles: PUBLISHER_ROLE posts tasks, EDGE_ROLE submits updates, AGGREGATOR_ROLE commits
 * global models, AUDITOR_ROLE is informational. DEFAULT_ADMIN_ROLE administers all of them.
 */
interface IConsortium is IAccessControl {
    /// @dev `edge` is the zero address.
    error ConsortiumInvalidEdge(address edge);

    /// @dev `validator` is the zero address.
    error ConsortiumInvalidValidator(address validator);

    /// @dev `edge` already has a validator on record.
    error ConsortiumEdgeAlreadyRegistered(address edge);

    /// @dev `validator` is already the validator of `edge`.
    error ConsortiumValidatorAlreadyRegistered(address validator, address edge);

    /// @notice `edge` was registered with validator `validator` and granted EDGE_ROLE.
    event EdgeRegistered(address indexed edge, address indexed validator, string name);

    /// @notice Role id of task publishers.
    function PUBLISHER_ROLE() external view returns (bytes32);

    /// @notice Role id of edge operators (update submitters).
    function EDGE_ROLE() external view returns (bytes32);

    /// @notice Role id of aggregators (global model committers).
    function AGGREGATOR_ROLE() external view returns (bytes32);

    /// @notice Role id of auditors.
    function AUDITOR_ROLE() external view returns (bytes32);

    /**
     * @notice Registers edge operator `edge` with its validator address and grants it EDGE_ROLE.
     * @dev Requirements:
     * - the caller has DEFAULT_ADMIN_ROLE;
     * - `edge` and `validator` are non-zero;
     * - neither `edge` nor `validator` is registered yet.
     *
     * Emits an {EdgeRegistered} event (and {RoleGranted} unless `edge` held EDGE_ROLE).
     */
    function registerEdge(address edge, address validator, string calldata name) external;

    /**
     * @notice The validator address of `edge`, or the zero address if it is not registered.
     * @dev Requirements: none. Emits nothing.
     */
    function validatorOf(address edge) external view returns (address);

    /**
     * @notice The edge whose validator is `validator`, or the zero address.
     * @dev Requirements: none. Emits nothing.
     */
    function edgeOf(address validator) external view returns (address);

    /**
     * @notice The display name `edge` was registered with.
     * @dev Requirements: none. Emits nothing.
     */
    function edgeName(address edge) external view returns (string memory);

    /**
     * @notice All registered edges, in registration order.
     * @dev Requirements: none. Emits nothing.
     */
    function edges() external view returns (address[] memory);
}
