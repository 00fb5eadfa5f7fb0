// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";

import {IConsortium} from "./interfaces/IConsortium.sol";

/**
 * @title Consortium
 * @notice Roles of the consortium members, the validator address of each edge operator, and
 * the proposals the edge operators vote on.
 * @dev The admin is the deployer; while bootstrapping it grants roles, registers the initial
 * edges, sets the quorum and may transfer its role in two steps with a delay
 * (AccessControlDefaultAdminRules). {endBootstrap} closes every one of those doors: afterwards
 * roles, the quorum and the admin role itself change only through proposals and votes.
 * Every registered edge holds EDGE_ROLE: every revocation of EDGE_ROLE (vote, bootstrap
 * admin, renouncement) also unregisters the edge, and the last edge can never lose it.
 */
contract Consortium is AccessControlDefaultAdminRules, IConsortium {
    bytes32 public constant PUBLISHER_ROLE = keccak256("PUBLISHER_ROLE");
    bytes32 public constant EDGE_ROLE = keccak256("EDGE_ROLE");
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");
    bytes32 public constant AUDITOR_ROLE = keccak256("AUDITOR_ROLE");
    uint16 public constant DEFAULT_VOTE_QUORUM_PERCENT = 51;
    uint16 public constant MIN_VOTE_QUORUM_PERCENT = 51;

    struct EdgeRecord {
        address validator;
        string name;
    }

    uint64 private immutable _votingPeriod;
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
     * @param votingPeriod_ seconds a proposal stays open for votes after its creation (> 0).
     */
    constructor(uint48 adminTransferDelay, uint64 votingPeriod_)
        AccessControlDefaultAdminRules(adminTransferDelay, msg.sender)
    {
        if (votingPeriod_ == 0) revert ConsortiumInvalidVotingPeriod(votingPeriod_);
        _votingPeriod = votingPeriod_;
    }

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
        if (action != ProposalAction.Add && action != ProposalAction.Remove) {
            revert ConsortiumUnexpectedAction(action);
        }
        proposalId = _create(action, role, account, validator, name, 0);
    }

    /// @inheritdoc IConsortium
    function proposeQuorum(uint16 quorumPercent) external onlyRole(EDGE_ROLE) returns (uint256) {
        return _create(ProposalAction.SetQuorum, 0, address(0), address(0), "", quorumPercent);
    }

    /// @inheritdoc IConsortium
    function proposeAdminTransfer(address newAdmin) external onlyRole(EDGE_ROLE) returns (uint256) {
        return _create(ProposalAction.TransferAdmin, DEFAULT_ADMIN_ROLE, newAdmin, address(0), "", 0);
    }

    /// @inheritdoc IConsortium
    function proposeAdminRenounce() external onlyRole(EDGE_ROLE) returns (uint256) {
        return _create(ProposalAction.RenounceAdmin, DEFAULT_ADMIN_ROLE, defaultAdmin(), address(0), "", 0);
    }

    /// @inheritdoc IConsortium
    function vote(uint256 proposalId) external onlyRole(EDGE_ROLE) {
        Proposal storage entry = _proposal(proposalId);
        _requireActive(proposalId, entry);
        if (_voted[proposalId][msg.sender]) revert ConsortiumAlreadyVoted(proposalId, msg.sender);
        _vote(proposalId, entry);
    }

    /// @inheritdoc IConsortium
    function cancel(uint256 proposalId) external {
        Proposal storage entry = _proposal(proposalId);
        if (entry.proposer != msg.sender) revert ConsortiumNotProposer(proposalId, msg.sender);
        _requireActive(proposalId, entry);
        entry.cancelled = true;
        emit ProposalCancelled(proposalId, msg.sender);
    }

    /// @inheritdoc IConsortium
    function endBootstrap() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireBootstrapping();
        _bootstrapEnded = true;
        _cancelDefaultAdminTransfer();
        emit BootstrapEnded(msg.sender);
    }

    /// @inheritdoc IConsortium
    function setVoteQuorum(uint16 quorumPercent) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _requireBootstrapping();
        _setVoteQuorum(quorumPercent);
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
     * @dev Admin-only while bootstrapping; afterwards roles change only by vote. Revoking
     * EDGE_ROLE also removes the edge from the registry and never removes the last edge.
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits a {RoleRevoked} event (and {EdgeRemoved} for a registered edge).
     */
    function revokeRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        _requireBootstrapping();
        super.revokeRole(role, account);
    }

    /**
     * @dev Any holder may give up its own role at any time, except that the admin may renounce
     * only while bootstrapping (afterwards by {proposeAdminRenounce}); an edge renouncing
     * EDGE_ROLE leaves the registry too, and the last edge cannot leave.
     * Requirements: `account` is the caller (AccessControlBadConfirmation); for
     * DEFAULT_ADMIN_ROLE still bootstrapping and the two-step schedule passed; for EDGE_ROLE
     * not the last edge (ConsortiumLastEdge).
     * Emits a {RoleRevoked} event (and {EdgeRemoved} for a registered edge).
     */
    function renounceRole(bytes32 role, address account)
        public
        override(AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == DEFAULT_ADMIN_ROLE) _requireBootstrapping();
        super.renounceRole(role, account);
    }

    /**
     * @dev Bootstrap only; afterwards the admin role moves by {proposeAdminTransfer}.
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits a DefaultAdminTransferScheduled event.
     */
    function beginDefaultAdminTransfer(address newAdmin) public override {
        _requireBootstrapping();
        super.beginDefaultAdminTransfer(newAdmin);
    }

    /**
     * @dev Bootstrap only ({endBootstrap} already cancelled any pending transfer).
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits a DefaultAdminTransferCanceled event.
     */
    function cancelDefaultAdminTransfer() public override {
        _requireBootstrapping();
        super.cancelDefaultAdminTransfer();
    }

    /**
     * @dev Bootstrap only: no two-step transfer completes after {endBootstrap}.
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits {RoleRevoked} and {RoleGranted} events.
     */
    function acceptDefaultAdminTransfer() public override {
        _requireBootstrapping();
        super.acceptDefaultAdminTransfer();
    }

    /**
     * @dev Bootstrap only.
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits a DefaultAdminDelayChangeScheduled event.
     */
    function changeDefaultAdminDelay(uint48 newDelay) public override {
        _requireBootstrapping();
        super.changeDefaultAdminDelay(newDelay);
    }

    /**
     * @dev Bootstrap only.
     * Requirements: still bootstrapping; as AccessControlDefaultAdminRules.
     * Emits a DefaultAdminDelayChangeCanceled event if a change was pending.
     */
    function rollbackDefaultAdminDelay() public override {
        _requireBootstrapping();
        super.rollbackDefaultAdminDelay();
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
    function votingPeriod() external view returns (uint64) {
        return _votingPeriod;
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
    function state(uint256 proposalId) external view returns (ProposalState) {
        return _state(_proposal(proposalId));
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

    /// @dev Every path that takes EDGE_ROLE away (vote, bootstrap admin, renouncement) lands
    /// here: it keeps the last edge and removes the edge from the registry with its role.
    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        if (role == EDGE_ROLE && _edgeRoleCount == 1 && hasRole(role, account)) {
            revert ConsortiumLastEdge(account);
        }
        revoked = super._revokeRole(role, account);
        if (revoked && role == EDGE_ROLE) {
            _edgeRoleCount -= 1;
            _unregisterEdge(account);
        }
    }

    function _create(
        ProposalAction action,
        bytes32 role,
        address account,
        address validator,
        string memory name,
        uint16 quorumPercent
    ) private returns (uint256 proposalId) {
        Proposal storage created = _proposals.push();
        created.action = action;
        created.role = role;
        created.account = account;
        created.validator = validator;
        created.proposer = msg.sender;
        created.quorumPercent = quorumPercent;
        created.deadline = uint64(block.timestamp) + _votingPeriod;
        created.name = name;
        _requireExecutable(created);
        proposalId = _proposals.length;
        emit ProposalCreated(
            proposalId, msg.sender, action, role, account, validator, name, quorumPercent, created.deadline
        );
        _vote(proposalId, created);
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
        _requireExecutable(entry);
        entry.executed = true;
        ProposalAction action = entry.action;
        address account = entry.account;
        if (action == ProposalAction.Add) {
            if (entry.role == EDGE_ROLE) _registerEdge(account, entry.validator, entry.name);
            else _grantRole(entry.role, account);
        } else if (action == ProposalAction.Remove) {
            _revokeRole(entry.role, account);
        } else if (action == ProposalAction.SetQuorum) {
            _setVoteQuorum(entry.quorumPercent);
        } else {
            _cancelDefaultAdminTransfer();
            address current = defaultAdmin();
            if (current != address(0)) _revokeRole(DEFAULT_ADMIN_ROLE, current);
            if (action == ProposalAction.TransferAdmin) _grantRole(DEFAULT_ADMIN_ROLE, account);
            // RenounceAdmin: `account` was checked to be `current`, now revoked
        }
        emit ProposalExecuted(proposalId, action, entry.role, account);
    }

    function _setVoteQuorum(uint16 quorumPercent) private {
        _requireQuorum(quorumPercent);
        uint16 previous = _voteQuorumPercent;
        _voteQuorumPercent = quorumPercent;
        emit VoteQuorumChanged(previous, quorumPercent);
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

    function _requireExecutable(Proposal storage entry) private view {
        ProposalAction action = entry.action;
        address account = entry.account;
        if (action == ProposalAction.SetQuorum) {
            _requireQuorum(entry.quorumPercent);
        } else if (action == ProposalAction.TransferAdmin) {
            if (account == address(0)) revert ConsortiumInvalidAccount(account);
            if (account == defaultAdmin()) revert ConsortiumAlreadyMember(DEFAULT_ADMIN_ROLE, account);
        } else if (action == ProposalAction.RenounceAdmin) {
            address current = defaultAdmin();
            if (current == address(0)) revert ConsortiumNoAdmin();
            if (current != account) revert ConsortiumNotMember(DEFAULT_ADMIN_ROLE, account);
        } else {
            _requireMembershipChange(action, entry.role, account, entry.validator);
        }
    }

    function _requireMembershipChange(ProposalAction action, bytes32 role, address account, address validator)
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

    function _requireQuorum(uint16 quorumPercent) private pure {
        if (quorumPercent > 100) revert ConsortiumInvalidQuorum(quorumPercent);
        if (quorumPercent < MIN_VOTE_QUORUM_PERCENT) {
            revert ConsortiumQuorumBelowFloor(quorumPercent, MIN_VOTE_QUORUM_PERCENT);
        }
    }

    function _requireActive(uint256 proposalId, Proposal storage entry) private view {
        ProposalState current = _state(entry);
        if (current == ProposalState.Executed) revert ConsortiumProposalClosed(proposalId);
        if (current == ProposalState.Cancelled) revert ConsortiumProposalCancelled(proposalId);
        if (current == ProposalState.Expired) revert ConsortiumProposalExpired(proposalId, entry.deadline);
    }

    function _requireBootstrapping() private view {
        if (_bootstrapEnded) revert ConsortiumBootstrapEnded();
    }

    function _state(Proposal storage entry) private view returns (ProposalState) {
        if (entry.executed) return ProposalState.Executed;
        if (entry.cancelled) return ProposalState.Cancelled;
        // Deadlines are days long; a validator's few seconds of clock skew do not matter.
        // slither-disable-next-line timestamp
        if (block.timestamp > entry.deadline) return ProposalState.Expired;
        return ProposalState.Active;
    }

    function _proposal(uint256 proposalId) private view returns (Proposal storage) {
        if (proposalId == 0 || proposalId > _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        return _proposals[proposalId - 1];
    }
}
