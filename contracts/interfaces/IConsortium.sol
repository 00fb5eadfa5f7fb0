// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";

/**
 * @title IConsortium
 * @notice Members and roles of a federated learning consortium, and the validator (Clique
 * signer) address of every edge operator.
 * @dev Roles: PUBLISHER_ROLE posts tasks, EDGE_ROLE submits updates, AGGREGATOR_ROLE commits
 * global models, AUDITOR_ROLE is informational. While bootstrapping, DEFAULT_ADMIN_ROLE grants
 * and revokes them and registers the initial edges; after {endBootstrap} every membership
 * change is a proposal of an edge operator that executes once enough edge operators voted for
 * it ({requiredVotes}: `voteQuorumPercent` of the current edge operators, rounded up, and the
 * quorum is never at or below half of them). After {endBootstrap} the admin has no power left:
 * the vote quorum, an admin transfer and the admin's renouncement are proposals too. A
 * proposal expires {votingPeriod} seconds after its creation and its proposer may cancel it;
 * its lifecycle ({state}) is derived, never stored. Every registered edge holds EDGE_ROLE: any
 * revocation of EDGE_ROLE, renouncement included, also removes the edge from the registry, and
 * the last edge operator can never lose it ({ConsortiumLastEdge}).
 */
interface IConsortium is IAccessControl {
    /// @dev What a proposal does: add or remove `role` for `account`, set the vote quorum,
    /// transfer DEFAULT_ADMIN_ROLE to `account`, or renounce it.
    enum ProposalAction {
        Add,
        Remove,
        SetQuorum,
        TransferAdmin,
        RenounceAdmin
    }

    /// @dev Lifecycle of a proposal, derived from its flags and its deadline (Governor style).
    enum ProposalState {
        Active,
        Executed,
        Cancelled,
        Expired
    }

    /// @dev A proposal; `validator` and `name` only matter when adding EDGE_ROLE,
    /// `quorumPercent` only for SetQuorum. Votes are accepted until `deadline` (unix seconds,
    /// inclusive), fixed at creation.
    struct Proposal {
        ProposalAction action;
        bytes32 role;
        address account;
        address validator;
        address proposer;
        bool executed;
        bool cancelled;
        uint16 quorumPercent;
        uint64 deadline;
        string name;
        address[] voters;
    }

    /// @dev The bootstrap phase is over: roles change only through proposals.
    error ConsortiumBootstrapEnded();

    /// @dev `role` is not one of the four governed roles.
    error ConsortiumUngovernedRole(bytes32 role);

    /// @dev `account` is the zero address.
    error ConsortiumInvalidAccount(address account);

    /// @dev `account` already holds `role`.
    error ConsortiumAlreadyMember(bytes32 role, address account);

    /// @dev `account` does not hold `role`.
    error ConsortiumNotMember(bytes32 role, address account);

    /// @dev No proposal has id `proposalId`.
    error ConsortiumUnknownProposal(uint256 proposalId);

    /// @dev Proposal `proposalId` was already executed.
    error ConsortiumProposalClosed(uint256 proposalId);

    /// @dev `voter` already voted for proposal `proposalId`.
    error ConsortiumAlreadyVoted(uint256 proposalId, address voter);

    /// @dev `edge` is the last edge operator; removing it would leave nobody to vote or seal.
    error ConsortiumLastEdge(address edge);

    /// @dev A vote quorum is a percentage of at most 100.
    error ConsortiumInvalidQuorum(uint16 quorumPercent);

    /// @dev A vote quorum at or below half of the edge operators (under `minimumPercent`).
    error ConsortiumQuorumBelowFloor(uint16 quorumPercent, uint16 minimumPercent);

    /// @dev The voting period of proposals must be positive.
    error ConsortiumInvalidVotingPeriod(uint64 votingPeriod);

    /// @dev Proposal `proposalId` expired at `deadline` (unix seconds) without executing.
    error ConsortiumProposalExpired(uint256 proposalId, uint64 deadline);

    /// @dev Proposal `proposalId` was cancelled by its proposer.
    error ConsortiumProposalCancelled(uint256 proposalId);

    /// @dev Only the proposer of `proposalId` may cancel it; `caller` is not.
    error ConsortiumNotProposer(uint256 proposalId, address caller);

    /// @dev {propose} makes membership proposals only (Add or Remove), not `action`.
    error ConsortiumUnexpectedAction(ProposalAction action);

    /// @dev There is no admin to renounce.
    error ConsortiumNoAdmin();
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

    /// @notice `edge` (with validator `validator`) left the consortium; EDGE_ROLE was revoked.
    event EdgeRemoved(address indexed edge, address indexed validator);

    /// @notice `proposer` proposed `action` (for `role` and `account`, or quorum
    /// `quorumPercent`); votes are accepted until `deadline` (unix seconds).
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        ProposalAction action,
        bytes32 indexed role,
        address account,
        address validator,
        string name,
        uint16 quorumPercent,
        uint64 deadline
    );

    /// @notice `proposer` cancelled its proposal `proposalId`.
    event ProposalCancelled(uint256 indexed proposalId, address indexed proposer);

    /// @notice `voter` voted for `proposalId`; `votes` of `required` live votes are in.
    event VoteCast(uint256 indexed proposalId, address indexed voter, uint256 votes, uint256 required);

    /// @notice Proposal `proposalId` was executed: `role` added to or removed from `account`
    /// (for TransferAdmin the new admin, for RenounceAdmin the former one; zero for SetQuorum).
    event ProposalExecuted(
        uint256 indexed proposalId, ProposalAction action, bytes32 indexed role, address indexed account
    );

    /// @notice `admin` ended the bootstrap phase; from now on roles change only by vote.
    event BootstrapEnded(address indexed admin);

    /// @notice The vote quorum changed from `oldPercent` to `newPercent` of the edge operators.
    event VoteQuorumChanged(uint16 oldPercent, uint16 newPercent);

    /// @notice Role id of task publishers.
    function PUBLISHER_ROLE() external view returns (bytes32);

    /// @notice Role id of edge operators (update submitters).
    function EDGE_ROLE() external view returns (bytes32);

    /// @notice Role id of aggregators (global model committers).
    function AGGREGATOR_ROLE() external view returns (bytes32);

    /// @notice Role id of auditors.
    function AUDITOR_ROLE() external view returns (bytes32);

    /// @notice The smallest vote quorum accepted, in percent: strictly above half.
    function MIN_VOTE_QUORUM_PERCENT() external view returns (uint16);

    /**
     * @notice Registers edge operator `edge` with its validator address and grants it EDGE_ROLE.
     * @dev Requirements:
     * - the caller has DEFAULT_ADMIN_ROLE;
     * - the consortium is still bootstrapping;
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

    /**
     * @notice Proposes to add `role` to `account` (with `validator` and `name` for EDGE_ROLE)
     * or to remove it; the proposer's vote is counted at once.
     * @dev Requirements:
     * - the caller has EDGE_ROLE; `action` is Add or Remove;
     * - `role` is PUBLISHER_ROLE, EDGE_ROLE, AGGREGATOR_ROLE or AUDITOR_ROLE; `account` non-zero;
     * - Add: `account` lacks `role`; for EDGE_ROLE `validator` is non-zero and unregistered;
     * - Remove: `account` holds `role`; an edge operator is not the last one.
     *
     * Emits {ProposalCreated}, {VoteCast} and, when the quorum is reached, {ProposalExecuted}
     * with {RoleGranted}/{RoleRevoked} and {EdgeRegistered}/{EdgeRemoved}.
     */
    function propose(
        ProposalAction action,
        bytes32 role,
        address account,
        address validator,
        string calldata name
    ) external returns (uint256 proposalId);

    /**
     * @notice Votes for proposal `proposalId`; executes it once the quorum is reached.
     * @dev Requirements:
     * - the caller has EDGE_ROLE;
     * - the proposal exists and is Active (not executed, cancelled or past its deadline);
     * - the caller has not voted for it;
     * - on execution, the proposal's requirements (see the propose functions) still hold.
     *
     * Emits {VoteCast} and, when the quorum is reached, {ProposalExecuted} with the events of
     * its action (role events, {VoteQuorumChanged}).
     */
    function vote(uint256 proposalId) external;

    /**
     * @notice Proposes to set the vote quorum to `quorumPercent`; the proposer's vote counts.
     * @dev Requirements:
     * - the caller has EDGE_ROLE;
     * - MIN_VOTE_QUORUM_PERCENT <= `quorumPercent` <= 100 (strictly above half).
     *
     * Emits {ProposalCreated}, {VoteCast} and, on quorum, {ProposalExecuted} and
     * {VoteQuorumChanged}.
     */
    function proposeQuorum(uint16 quorumPercent) external returns (uint256 proposalId);

    /**
     * @notice Proposes to make `newAdmin` the DEFAULT_ADMIN_ROLE holder (no delay: the vote
     * is the deliberation); a pending two-step transfer is cancelled on execution.
     * @dev Requirements:
     * - the caller has EDGE_ROLE;
     * - `newAdmin` is non-zero and not the current admin.
     *
     * Emits {ProposalCreated}, {VoteCast} and, on quorum, {ProposalExecuted} with
     * {RoleRevoked} (former admin) and {RoleGranted} (new admin).
     */
    function proposeAdminTransfer(address newAdmin) external returns (uint256 proposalId);

    /**
     * @notice Proposes that the current admin lose DEFAULT_ADMIN_ROLE, leaving no admin.
     * @dev Requirements:
     * - the caller has EDGE_ROLE;
     * - there is an admin (recorded as the proposal's `account`), and on execution it is
     *   still the admin.
     *
     * Emits {ProposalCreated}, {VoteCast} and, on quorum, {ProposalExecuted} and {RoleRevoked}.
     */
    function proposeAdminRenounce() external returns (uint256 proposalId);

    /**
     * @notice Cancels proposal `proposalId`; no vote can execute it afterwards.
     * @dev Requirements:
     * - the caller is the proposal's proposer;
     * - the proposal is Active.
     *
     * Emits a {ProposalCancelled} event.
     */
    function cancel(uint256 proposalId) external;

    /**
     * @notice Lifecycle state of proposal `proposalId`, derived now.
     * @dev Requirements: the proposal exists. Emits nothing.
     */
    function state(uint256 proposalId) external view returns (ProposalState);

    /**
     * @notice Seconds a proposal stays open for votes after its creation.
     * @dev Requirements: none. Emits nothing.
     */
    function votingPeriod() external view returns (uint64);

    /**
     * @notice Ends the bootstrap phase: the admin can no longer grant, revoke or register, set
     * the quorum, transfer, renounce or change its delay; a pending admin transfer is cancelled.
     * @dev Requirements: the caller has DEFAULT_ADMIN_ROLE; still bootstrapping.
     *
     * Emits a {BootstrapEnded} event (and DefaultAdminTransferCanceled if one was pending).
     */
    function endBootstrap() external;

    /**
     * @notice Sets the share of edge operators (percent, rounded up) a proposal needs.
     * @dev Requirements: the caller has DEFAULT_ADMIN_ROLE; still bootstrapping (afterwards
     * see {proposeQuorum}); MIN_VOTE_QUORUM_PERCENT <= `quorumPercent` <= 100.
     *
     * Emits a {VoteQuorumChanged} event.
     */
    function setVoteQuorum(uint16 quorumPercent) external;

    /**
     * @notice Whether the admin may still grant and revoke roles directly.
     * @dev Requirements: none. Emits nothing.
     */
    function bootstrapping() external view returns (bool);

    /**
     * @notice The vote quorum in percent of the edge operators.
     * @dev Requirements: none. Emits nothing.
     */
    function voteQuorumPercent() external view returns (uint16);

    /**
     * @notice Live votes a proposal needs now: ceil(edgeCount * voteQuorumPercent / 100), >= 1.
     * @dev Requirements: none. Emits nothing.
     */
    function requiredVotes() external view returns (uint256);

    /**
     * @notice Number of accounts holding EDGE_ROLE.
     * @dev Requirements: none. Emits nothing.
     */
    function edgeCount() external view returns (uint256);

    /**
     * @notice Proposal `proposalId` (ids run from 1 to {proposalCount}).
     * @dev Requirements: the proposal exists. Emits nothing.
     */
    function proposal(uint256 proposalId) external view returns (Proposal memory);

    /**
     * @notice Votes of proposal `proposalId` cast by accounts that still hold EDGE_ROLE.
     * @dev Requirements: the proposal exists. Emits nothing.
     */
    function liveVotes(uint256 proposalId) external view returns (uint256);

    /**
     * @notice Number of proposals ever made.
     * @dev Requirements: none. Emits nothing.
     */
    function proposalCount() external view returns (uint256);
}
