"""Chain: the consortium half of InMemoryLedger: roles, edges, proposals and votes.

Mirrors ``contracts/Consortium.sol`` rule for rule (same custom-error names and args, same
order of checks), so governance tests run unchanged on the fake and on a real chain. The
admin's two-step transfer (AccessControlDefaultAdminRules) is not modelled: the admin role moves
only by a TransferAdmin proposal here, and renouncing it directly is refused as the contract
refuses it without a scheduled transfer.
"""

from __future__ import annotations

import dataclasses

from eth_utils import to_checksum_address

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    MIN_VOTE_QUORUM_PERCENT,
    PUBLISHER_ROLE,
)
from fednode.chain.memory_rules import MemoryChain, revert
from fednode.chain.records import Proposal, ProposalAction, ProposalState
from fednode.chain.roles import REGISTERED_EDGE, RoleChange

__all__ = ["GOVERNED_ROLES", "MemoryConsortium"]

GOVERNED_ROLES = (PUBLISHER_ROLE, EDGE_ROLE, AGGREGATOR_ROLE, AUDITOR_ROLE)
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)
_MEMBERSHIP = (ProposalAction.ADD, ProposalAction.REMOVE)


class MemoryConsortium:
    """Consortium methods of ``InMemoryLedger``; acts as ``self._sender`` on ``self._chain``."""

    _sender: str
    _chain: MemoryChain

    # --- roles --------------------------------------------------------------------------

    def has_role(self, role: bytes, account: str) -> bool:
        """Whether ``account`` holds ``role`` (a 32-byte role id)."""
        return to_checksum_address(account) in self._chain.roles.get(bytes(role), set())

    def grant_role(self, role: bytes, account: str) -> None:
        """Grants ``role`` to ``account``; admin only, while bootstrapping, never the admin role.

        Like ``AccessControlDefaultAdminRules.grantRole``: the admin role moves only by a
        TransferAdmin proposal (the two-step transfer is not modelled).
        """
        self._require_bootstrapping()
        self._refuse_admin_role(role)
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._set_role(bytes(role), to_checksum_address(account), granted=True)
        self._chain.mine(self._sender)

    def revoke_role(self, role: bytes, account: str) -> None:
        """Revokes ``role`` from ``account``; admin only, while bootstrapping. Revoking
        EDGE_ROLE unregisters the edge too and never takes it from the last edge."""
        self._require_bootstrapping()
        self._refuse_admin_role(role)
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._revoke(bytes(role), to_checksum_address(account))
        self._chain.mine(self._sender)

    def renounce_role(self, role: bytes, account: str) -> None:
        """Gives up the sender's own ``role``; an edge leaves the registry with it.

        The admin may not renounce after the bootstrap (ConsortiumBootstrapEnded), nor before
        without a scheduled two-step transfer (AccessControlEnforcedDefaultAdminDelay, which
        the fake never schedules); the last edge cannot leave (ConsortiumLastEdge).
        """
        role, account = bytes(role), to_checksum_address(account)
        if role == DEFAULT_ADMIN_ROLE:
            self._require_bootstrapping()
            if account in self._chain.roles.get(DEFAULT_ADMIN_ROLE, set()):
                raise revert("AccessControlEnforcedDefaultAdminDelay", schedule=0)
        if account != self._sender:
            raise revert("AccessControlBadConfirmation")
        self._revoke(role, account)
        self._chain.mine(self._sender)

    def register_edge(self, edge: str, validator: str, name: str) -> None:
        """Records ``edge``'s validator (Clique signer) and grants EDGE_ROLE; admin only."""
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._require_bootstrapping()
        edge, validator = to_checksum_address(edge), to_checksum_address(validator)
        self._require_registrable(edge, validator)
        self._register(edge, validator, name)
        self._chain.mine(self._sender)

    def end_bootstrap(self) -> None:
        """Ends the bootstrap phase (admin only)."""
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._require_bootstrapping()
        self._chain.bootstrap_ended = True
        self._chain.mine(self._sender)

    def set_vote_quorum(self, percent: int) -> None:
        """Sets the share of edge operators (51..100 %) a proposal needs; admin, bootstrap only."""
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._require_bootstrapping()
        self._require_quorum(percent)
        self._chain.vote_quorum_percent = percent
        self._chain.mine(self._sender)

    # --- proposals ----------------------------------------------------------------------

    def propose_member(
        self,
        action: ProposalAction,
        role: bytes,
        account: str,
        *,
        validator: str = ZERO_ADDRESS,
        name: str = "",
    ) -> int:
        """Proposes to add or remove ``role`` for ``account``; returns the proposal id."""
        self._require_role(EDGE_ROLE)
        action = ProposalAction(action)
        if action not in _MEMBERSHIP:
            raise revert("ConsortiumUnexpectedAction", action=int(action))
        account, validator = to_checksum_address(account), to_checksum_address(validator)
        return self._create(action, bytes(role), account, validator=validator, name=name)

    def propose_quorum(self, percent: int) -> int:
        """Proposes to set the vote quorum to ``percent`` (51..100); returns the proposal id."""
        self._require_role(EDGE_ROLE)
        return self._create(ProposalAction.SET_QUORUM, b"\x00" * 32, ZERO_ADDRESS, quorum=percent)

    def propose_admin_transfer(self, new_admin: str) -> int:
        """Proposes to make ``new_admin`` the admin; returns the proposal id."""
        self._require_role(EDGE_ROLE)
        account = to_checksum_address(new_admin)
        return self._create(ProposalAction.TRANSFER_ADMIN, DEFAULT_ADMIN_ROLE, account)

    def propose_admin_renounce(self) -> int:
        """Proposes that the current admin lose its role; returns the proposal id."""
        self._require_role(EDGE_ROLE)
        return self._create(ProposalAction.RENOUNCE_ADMIN, DEFAULT_ADMIN_ROLE, self.default_admin())

    def vote(self, proposal_id: int) -> bool:
        """Votes for a proposal; returns whether this vote executed it."""
        self._require_role(EDGE_ROLE)
        proposal = self.get_proposal(proposal_id)
        self._require_active(proposal)
        if self._sender in proposal.voters:
            raise revert("ConsortiumAlreadyVoted", proposalId=proposal_id, voter=self._sender)
        return self._vote(proposal)

    def cancel_proposal(self, proposal_id: int) -> None:
        """Cancels the sender's own active proposal."""
        proposal = self.get_proposal(proposal_id)
        if proposal.proposer != self._sender:
            raise revert("ConsortiumNotProposer", proposalId=proposal_id, caller=self._sender)
        self._require_active(proposal)
        self._chain.proposals[proposal_id - 1] = dataclasses.replace(proposal, cancelled=True)
        self._chain.mine(self._sender)

    # --- reads --------------------------------------------------------------------------

    def role_changes(self) -> list[RoleChange]:
        """Every role and edge-registration change in chain order (the admin's at block 0)."""
        moves = [c for c in self._chain.role_changes if c.role == DEFAULT_ADMIN_ROLE]
        # the deployer is the admin until its first change (always its revocation by a vote)
        founders = {moves[0].account} if moves else self._chain.roles.get(DEFAULT_ADMIN_ROLE, set())
        initial = [RoleChange(0, 0, i, DEFAULT_ADMIN_ROLE, a, True)
                   for i, a in enumerate(sorted(founders))]
        return initial + list(self._chain.role_changes)

    def has_role_at(self, role: bytes, account: str, block: int) -> bool:
        """Whether ``account`` held ``role`` at the end of ``block`` (as ``eth_call`` there)."""
        account, held = to_checksum_address(account), False
        for change in self.role_changes():
            if change.block <= block and change.role == bytes(role) and change.account == account:
                held = change.granted
        return held

    def default_admin(self) -> str:
        """The admin (DEFAULT_ADMIN_ROLE holder), or the zero address if none."""
        admins = sorted(self._chain.roles.get(DEFAULT_ADMIN_ROLE, set()))
        return admins[0] if admins else ZERO_ADDRESS

    def validator_of(self, edge: str) -> str:
        """The validator address registered for ``edge`` (the zero address if none)."""
        entry = self._chain.edges.get(to_checksum_address(edge))
        return entry[0] if entry else ZERO_ADDRESS

    def edges(self) -> list[str]:
        """Registered edges in registration order."""
        return list(self._chain.edges)

    def bootstrapping(self) -> bool:
        """Whether the admin may still grant and revoke roles directly."""
        return not self._chain.bootstrap_ended

    def vote_quorum_percent(self) -> int:
        """The vote quorum in percent of the edge operators."""
        return self._chain.vote_quorum_percent

    def voting_period(self) -> int:
        """Seconds a proposal stays open for votes after its creation."""
        return self._chain.voting_period

    def required_votes(self) -> int:
        """Live votes a proposal needs now: ceil(edges * percent / 100), at least 1."""
        edges = len(self._chain.roles.get(EDGE_ROLE, set()))
        return max(1, -(-edges * self._chain.vote_quorum_percent // 100))

    def get_proposal(self, proposal_id: int) -> Proposal:
        """One proposal, or ConsortiumUnknownProposal."""
        if not 1 <= proposal_id <= len(self._chain.proposals):
            raise revert("ConsortiumUnknownProposal", proposalId=proposal_id)
        return self._chain.proposals[proposal_id - 1]

    def proposal_state(self, proposal_id: int) -> ProposalState:
        """Lifecycle state of a proposal now, as ``Consortium.state``."""
        return self.get_proposal(proposal_id).state(self._chain.clock())

    def list_proposals(self) -> list[Proposal]:
        """Every proposal, oldest first."""
        return list(self._chain.proposals)

    # --- rules --------------------------------------------------------------------------

    def _create(
        self,
        action: ProposalAction,
        role: bytes,
        account: str,
        *,
        validator: str = ZERO_ADDRESS,
        name: str = "",
        quorum: int = 0,
    ) -> int:
        proposal = Proposal(
            proposal_id=len(self._chain.proposals) + 1, action=action, role=role,
            account=account, validator=validator, proposer=self._sender, executed=False,
            name=name, voters=(), quorum_percent=quorum,
            deadline=self._chain.clock() + self._chain.voting_period,
        )  # fmt: skip
        self._require_executable(proposal)
        self._chain.proposals.append(proposal)
        self._vote(proposal)
        return proposal.proposal_id

    def _vote(self, proposal: Proposal) -> bool:
        proposal = dataclasses.replace(proposal, voters=(*proposal.voters, self._sender))
        live = sum(self.has_role(EDGE_ROLE, voter) for voter in proposal.voters)
        if live >= self.required_votes():
            self._require_executable(proposal)
            proposal = dataclasses.replace(proposal, executed=True)
            self._execute(proposal)
        self._chain.proposals[proposal.proposal_id - 1] = proposal
        self._chain.mine(self._sender)
        return proposal.executed

    def _execute(self, proposal: Proposal) -> None:
        if proposal.action == ProposalAction.ADD:
            if proposal.role == EDGE_ROLE:
                self._register(proposal.account, proposal.validator, proposal.name)
            self._set_role(proposal.role, proposal.account, granted=True)
        elif proposal.action == ProposalAction.REMOVE:
            self._revoke(proposal.role, proposal.account)
        elif proposal.action == ProposalAction.SET_QUORUM:
            self._chain.vote_quorum_percent = proposal.quorum_percent
        else:
            current = self.default_admin()
            if current != ZERO_ADDRESS:
                self._set_role(DEFAULT_ADMIN_ROLE, current, granted=False)
            if proposal.action == ProposalAction.TRANSFER_ADMIN:
                self._set_role(DEFAULT_ADMIN_ROLE, proposal.account, granted=True)

    def _require_executable(self, proposal: Proposal) -> None:
        action, account = proposal.action, proposal.account
        if action == ProposalAction.SET_QUORUM:
            self._require_quorum(proposal.quorum_percent)
        elif action == ProposalAction.TRANSFER_ADMIN:
            if account == ZERO_ADDRESS:
                raise revert("ConsortiumInvalidAccount", account=account)
            if account == self.default_admin():
                raise revert("ConsortiumAlreadyMember", role=DEFAULT_ADMIN_ROLE, account=account)
        elif action == ProposalAction.RENOUNCE_ADMIN:
            current = self.default_admin()
            if current == ZERO_ADDRESS:
                raise revert("ConsortiumNoAdmin")
            if current != account:
                raise revert("ConsortiumNotMember", role=DEFAULT_ADMIN_ROLE, account=account)
        else:
            self._require_membership_change(action, proposal.role, account, proposal.validator)

    def _require_membership_change(
        self, action: ProposalAction, role: bytes, account: str, validator: str
    ) -> None:
        if role not in GOVERNED_ROLES:
            raise revert("ConsortiumUngovernedRole", role=role)
        if account == ZERO_ADDRESS:
            raise revert("ConsortiumInvalidAccount", account=account)
        member = self.has_role(role, account)
        if action == ProposalAction.ADD:
            if member:
                raise revert("ConsortiumAlreadyMember", role=role, account=account)
            if role == EDGE_ROLE:
                self._require_registrable(account, validator)
        elif not member:
            raise revert("ConsortiumNotMember", role=role, account=account)
        elif role == EDGE_ROLE and len(self._chain.roles.get(EDGE_ROLE, set())) == 1:
            raise revert("ConsortiumLastEdge", edge=account)

    def _require_active(self, proposal: Proposal) -> None:
        state, proposal_id = proposal.state(self._chain.clock()), proposal.proposal_id
        if state == ProposalState.EXECUTED:
            raise revert("ConsortiumProposalClosed", proposalId=proposal_id)
        if state == ProposalState.CANCELLED:
            raise revert("ConsortiumProposalCancelled", proposalId=proposal_id)
        if state == ProposalState.EXPIRED:
            raise revert("ConsortiumProposalExpired", proposalId=proposal_id,
                         deadline=proposal.deadline)

    @staticmethod
    def _require_quorum(percent: int) -> None:
        if percent > 100:
            raise revert("ConsortiumInvalidQuorum", quorumPercent=percent)
        if percent < MIN_VOTE_QUORUM_PERCENT:
            raise revert("ConsortiumQuorumBelowFloor", quorumPercent=percent,
                         minimumPercent=MIN_VOTE_QUORUM_PERCENT)

    def _require_registrable(self, edge: str, validator: str) -> None:
        if edge == ZERO_ADDRESS:
            raise revert("ConsortiumInvalidEdge", edge=edge)
        if validator == ZERO_ADDRESS:
            raise revert("ConsortiumInvalidValidator", validator=validator)
        if edge in self._chain.edges:
            raise revert("ConsortiumEdgeAlreadyRegistered", edge=edge)
        for other, (taken, _) in self._chain.edges.items():
            if taken == validator:
                raise revert(
                    "ConsortiumValidatorAlreadyRegistered", validator=validator, edge=other
                )

    def _register(self, edge: str, validator: str, name: str) -> None:
        self._chain.edges[edge] = (validator, name)
        self._set_role(EDGE_ROLE, edge, granted=True)
        self._log_change(REGISTERED_EDGE, edge, granted=True)

    def _revoke(self, role: bytes, account: str) -> None:
        """Every loss of a role, as ``Consortium._revokeRole``: the last edge keeps EDGE_ROLE,
        and an edge losing it leaves the registry."""
        members = self._chain.roles.get(role, set())
        if role == EDGE_ROLE and account in members and len(members) == 1:
            raise revert("ConsortiumLastEdge", edge=account)
        if account not in members:
            return
        self._set_role(role, account, granted=False)
        if role == EDGE_ROLE and account in self._chain.edges:
            del self._chain.edges[account]
            self._log_change(REGISTERED_EDGE, account, granted=False)

    def _set_role(self, role: bytes, account: str, *, granted: bool) -> None:
        """Grants or revokes; logs a RoleChange only when membership changes (as OZ emits)."""
        members = self._chain.roles.setdefault(role, set())
        if (account in members) != granted:
            (members.add if granted else members.discard)(account)
            self._log_change(role, account, granted=granted)

    def _log_change(self, role: bytes, account: str, *, granted: bool) -> None:
        """Records a change in the block about to be mined (every write mines exactly one)."""
        block = self._chain.block + 1
        log_index = sum(c.block == block for c in self._chain.role_changes)
        self._chain.role_changes.append(RoleChange(block, 0, log_index, role, account, granted))

    def _require_bootstrapping(self) -> None:
        if self._chain.bootstrap_ended:
            raise revert("ConsortiumBootstrapEnded")

    def _require_role(self, role: bytes) -> None:
        if not self.has_role(role, self._sender):
            raise revert("AccessControlUnauthorizedAccount", account=self._sender, neededRole=role)

    @staticmethod
    def _refuse_admin_role(role: bytes) -> None:
        if bytes(role) == DEFAULT_ADMIN_ROLE:
            raise revert("AccessControlEnforcedDefaultAdminRules")
