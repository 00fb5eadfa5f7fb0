// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";

/**
 * @title Consortium
 * @notice Roles of the consortium members and the validator address of each edge operator.
 * @dev The admin is the deployer; admin transfer is two-step with a delay
 * (AccessControlDefaultAdminRules). Membership changes are admin-only for now; governed
 * joining and removal (a vote of members) will replace {registerEdge}'s admin check.
 */
contract Consortium is AccessControlDefaultAdminRules, IConsortium {
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    bytes32 public constant EDGE_ROLE = keccak256("EDGE_ROLE");
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");

    struct EdgeRecord {
        address validator;
        string name;
    }

    mapping(address edge => EdgeRecord) private _edges;
    mapping(address validator => address edge) private _edgeOfValidator;
    address[] private _edgeList;

    /**
     * @param adminTransferDelay seconds a started admin transfer waits before it can be accepted.
     */
    constructor(uint48 adminTransferDelay) AccessControlDefaultAdminRules(adminTransferDelay, msg.sender) {}

    /// @inheritdoc IConsortium
    function registerEdge(address edge, address validator, string calldata name)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (edge == address(0)) revert ConsortiumInvalidEdge(edge);
        if (validator == address(0)) revert ConsortiumInvalidValidator(validator);
        if (_edges[edge].validator != address(0)) revert ConsortiumEdgeAlreadyRegistered(edge);
        address holder = _edgeOfValidator[validator];
        if (holder != address(0)) revert ConsortiumValidatorAlreadyRegistered(validator, holder);

        _edges[edge] = EdgeRecord(validator, name);
        _edgeOfValidator[validator] = edge;
        _edgeList.push(edge);
        _grantRole(EDGE_ROLE, edge);
        emit EdgeRegistered(edge, validator, name);
    }

    /// @inheritdoc IConsortium
    function validatorOf(address edge) external view returns (address) {
        return _edges[edge].validator;
    }

    /// @inheritdoc IConsortium
    function edgeOf(address validator) external view returns (address) {
        return _edgeOfValidator[validator];
    }

    /// @inheritdoc IConsortium
    function edgeName(address edge) external view returns (string memory) {
        return _edges[edge].name;
    }

    /// @inheritdoc IConsortium
    function edges() external view returns (address[] memory) {
        return _edgeList;
    }
}
