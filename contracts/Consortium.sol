// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";

/**
 * @title Consortium
 * @notice Roles of the consortium members, the validator address of each edge operator, and
 * the membership proposals the edge operators vote on.
 * @dev The admin is the deployer; admin transfer is two-step with a delay
 * (AccessControlDefaultAdminRules). While bootstrapping the admin grants roles and registers
 * the initial edges; after {endBootstrap} roles change only through {propose} / {vote}.
 */
contract Consortium is AccessControlDefaultAdminRules, IConsortium {
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    bytes32 public constant EDGE_ROLE = keccak256("EDGE_ROLE");
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    uint16 public constant DEFAULT_VOTE_QUORUM_PERCENT = 51;

    struct EdgeRecord {
        address validator;
        string name;
    }

    mapping(address edge => EdgeRecord) private _edges;
    mapping(address validator => address edge) private _edgeOfValidator;
    address[] private _edgeList;
    uint256 private _edgeRoleCount;
    bool private _bootstrapEnded;
    uint16 private _voteQuorumPercent = DEFAULT_VOTE_QUORUM_PERCENT;
    Proposal[] private _proposals;
    mapping(uint256 proposalId => mapping(address voter => bool)) private _voted;

    /**
     * @param adminTransferDelay seconds a started admin transfer waits before it can be accepted.
     */
    constructor(uint48 adminTransferDelay) AccessControlDefaultAdminRules(adminTransferDelay, msg.sender) {}

    /// @inheritdoc IConsortium
    function registerEdge(address edge, address validator, string calldata name)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        _requireBootstrapping();
        _requireRegistrable(edge, validator);
        _registerEdge(edge, validator, name);
    }

    /// @inheritdoc IConsortium
    function propose(
        ProposalAction action,
        bytes32 role,
        address account,
        address validator,
        string calldata name
    ) external onlyRole(EDGE_ROLE) returns (uint256 proposalId) {
        _requireExecutable(action, role, account, validator);
        Proposal storage created = _proposals.push();
        created.action = action;
        created.role = role;
        created.account = account;
        created.validator = validator;
        created.proposer = msg.sender;
        created.name = name;
        proposalId = _proposals.length;
        emit ProposalCreated(proposalId, msg.sender, action, role, account, validator, name);
        _vote(proposalId, created);
    }

    /// @inheritdoc IConsortium
    function vote(uint256 proposalId) external onlyRole(EDGE_ROLE) {
        Proposal storage entry = _proposal(proposalId);
        if (entry.executed) revert ConsortiumProposalClosed(proposalId);
        if (_voted[proposalId][msg.sender]) revert ConsortiumAlreadyVoted(proposalId, msg.sender);
        _vote(proposalId, entry);
    }

    /// @inheritdoc IConsortium
    function endBootstrap() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireBootstrapping();
        _bootstrapEnded = true;
        emit BootstrapEnded(msg.sender);
    }

    /// @inheritdoc IConsortium
    function setVoteQuorum(uint16 quorumPercent) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (quorumPercent == 0 || quorumPercent > 100) revert ConsortiumInvalidQuorum(quorumPercent);
        uint16 previous = _voteQuorumPercent;
        _voteQuorumPercent = quorumPercent;
        emit VoteQuorumChanged(previous, quorumPercent);
    }

    /**
     * @dev Admin-only while bootstrapping; afterwards roles change only by vote.
     * Requirements: as AccessControlDefaultAdminRules, and still bootstrapping.
     * Emits a {RoleGranted} event.
     */
    function grantRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        _requireBootstrapping();
        super.grantRole(role, account);
    }

    /**
     * @dev Admin-only while bootstrapping; afterwards roles change only by vote.
     * Requirements: as AccessControlDefaultAdminRules, and still bootstrapping.
     * Emits a {RoleRevoked} event.
     */
    function revokeRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        _requireBootstrapping();
        super.revokeRole(role, account);
    }

    /// @inheritdoc IConsortium
    function bootstrapping() external view returns (bool) {
        return !_bootstrapEnded;
    }

    /// @inheritdoc IConsortium
    function voteQuorumPercent() external view returns (uint16) {
        return _voteQuorumPercent;
    }

    /// @inheritdoc IConsortium
    function requiredVotes() public view returns (uint256) {
        uint256 needed = (_edgeRoleCount * _voteQuorumPercent + 99) / 100;
        return needed == 0 ? 1 : needed;
    }

    /// @inheritdoc IConsortium
    function edgeCount() external view returns (uint256) {
        return _edgeRoleCount;
    }

    /// @inheritdoc IConsortium
    function proposal(uint256 proposalId) external view returns (Proposal memory) {
        return _proposal(proposalId);
    }

    /// @inheritdoc IConsortium
    function liveVotes(uint256 proposalId) public view returns (uint256 count) {
        address[] storage voters = _proposal(proposalId).voters;
        for (uint256 i = 0; i < voters.length; ++i) {
            if (hasRole(EDGE_ROLE, voters[i])) count += 1;
        }
    }

    /// @inheritdoc IConsortium
    function proposalCount() external view returns (uint256) {
        return _proposals.length;
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

    /// @dev Counts EDGE_ROLE holders so the quorum follows membership.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        if (granted && role == EDGE_ROLE) _edgeRoleCount += 1;
    }

    /// @dev Counts EDGE_ROLE holders so the quorum follows membership.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        if (revoked && role == EDGE_ROLE) _edgeRoleCount -= 1;
    }

    function _vote(uint256 proposalId, Proposal storage entry) private {
        _voted[proposalId][msg.sender] = true;
        entry.voters.push(msg.sender);
        uint256 votes = liveVotes(proposalId);
        uint256 required = requiredVotes();
        emit VoteCast(proposalId, msg.sender, votes, required);
        if (votes >= required) _execute(proposalId, entry);
    }

    function _execute(uint256 proposalId, Proposal storage entry) private {
        _requireExecutable(entry.action, entry.role, entry.account, entry.validator);
        entry.executed = true;
        if (entry.action == ProposalAction.Add) {
            if (entry.role == EDGE_ROLE) _registerEdge(entry.account, entry.validator, entry.name);
            else _grantRole(entry.role, entry.account);
        } else {
            if (entry.role == EDGE_ROLE) _unregisterEdge(entry.account);
            _revokeRole(entry.role, entry.account);
        }
        emit ProposalExecuted(proposalId, entry.action, entry.role, entry.account);
    }

    function _registerEdge(address edge, address validator, string memory name) private {
        _edges[edge] = EdgeRecord(validator, name);
        _edgeOfValidator[validator] = edge;
        _edgeList.push(edge);
        _grantRole(EDGE_ROLE, edge);
        emit EdgeRegistered(edge, validator, name);
    }

    function _unregisterEdge(address edge) private {
        address validator = _edges[edge].validator;
        if (validator == address(0)) return;
        delete _edgeOfValidator[validator];
        delete _edges[edge];
        uint256 last = _edgeList.length - 1;
        for (uint256 i = 0; i < last; ++i) {
            if (_edgeList[i] == edge) {
                // keep registration order: shift the tail left by one
                for (uint256 j = i; j < last; ++j) {
                    _edgeList[j] = _edgeList[j + 1];
                }
                break;
            }
        }
        _edgeList.pop();
        emit EdgeRemoved(edge, validator);
    }

    function _requireExecutable(ProposalAction action, bytes32 role, address account, address validator)
        private
        view
    {
        if (role != PUBLISHER_ROLE && role != EDGE_ROLE && role != AGGREGATOR_ROLE && role != AUDITOR_ROLE) {
            revert ConsortiumUngovernedRole(role);
        }
        if (account == address(0)) revert ConsortiumInvalidAccount(account);
        bool member = hasRole(role, account);
        if (action == ProposalAction.Add) {
            if (member) revert ConsortiumAlreadyMember(role, account);
            if (role == EDGE_ROLE) _requireRegistrable(account, validator);
        } else {
            if (!member) revert ConsortiumNotMember(role, account);
            if (role == EDGE_ROLE && _edgeRoleCount == 1) revert ConsortiumLastEdge(account);
        }
    }

    function _requireRegistrable(address edge, address validator) private view {
        if (edge == address(0)) revert ConsortiumInvalidEdge(edge);
        if (validator == address(0)) revert ConsortiumInvalidValidator(validator);
        if (_edges[edge].validator != address(0)) revert ConsortiumEdgeAlreadyRegistered(edge);
        address holder = _edgeOfValidator[validator];
        if (holder != address(0)) revert ConsortiumValidatorAlreadyRegistered(validator, holder);
    }

    function _requireBootstrapping() private view {
        if (_bootstrapEnded) revert ConsortiumBootstrapEnded();
    }

    function _proposal(uint256 proposalId) private view returns (Proposal storage) {
        if (proposalId == 0 || proposalId > _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        return _proposals[proposalId - 1];
    }
}
