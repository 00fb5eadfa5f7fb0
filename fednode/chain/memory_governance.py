"""Chain: the consortium half of InMemoryLedger: roles, edges, proposals and votes.

Mirrors ``contracts/Consortium.sol`` rule for rule (same custom-error names and args, same
order of checks), so governance tests run unchanged on the fake and on a real chain.
"""

from __future__ import annotations

import dataclasses

from eth_utils import to_checksum_address

from fednode.chain.constants import (
    AGGREGATOR_ROLE,
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    EDGE_ROLE,
    PUBLISHER_ROLE,
)
from fednode.chain.memory_rules import MemoryChain, revert
from fednode.chain.records import Proposal, ProposalAction
from fednode.chain.roles import REGISTERED_EDGE, RoleChange

__all__ = ["GOVERNED_ROLES", "MemoryConsortium"]

GOVERNED_ROLES = (PUBLISHER_ROLE, EDGE_ROLE, AGGREGATOR_ROLE, AUDITOR_ROLE)
ZERO_ADDRESS = to_checksum_address("0x" + "00" * 20)


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
        two-step transfer, which the fake does not model.
        """
        self._require_bootstrapping()
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._refuse_admin_role(role)
        self._set_role(bytes(role), to_checksum_address(account), granted=True)
        self._chain.mine(self._sender)

    def revoke_role(self, role: bytes, account: str) -> None:
        """Revokes ``role`` from ``account``; admin only, while bootstrapping."""
        self._require_bootstrapping()
        self._require_role(DEFAULT_ADMIN_ROLE)
        self._refuse_admin_role(role)
        self._set_role(bytes(role), to_checksum_address(account), granted=False)
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
        """Sets the share of edge operators (1..100 %) a proposal needs (admin only)."""
        self._require_role(DEFAULT_ADMIN_ROLE)
        if not 1 <= percent <= 100:
            raise revert("ConsortiumInvalidQuorum", quorumPercent=percent)
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
        account, validator = to_checksum_address(account), to_checksum_address(validator)
        action, role = ProposalAction(action), bytes(role)
        self._require_executable(action, role, account, validator)
        proposal_id = len(self._chain.proposals) + 1
        self._chain.proposals.append(
            Proposal(proposal_id, action, role, account, validator, self._sender, False, name, ())
        )
        self._vote(proposal_id)
        return proposal_id

    def vote(self, proposal_id: int) -> bool:
        """Votes for a proposal; returns whether this vote executed it."""
        self._require_role(EDGE_ROLE)
        proposal = self.get_proposal(proposal_id)
        if proposal.executed:
            raise revert("ConsortiumProposalClosed", proposalId=proposal_id)
        if self._sender in proposal.voters:
            raise revert("ConsortiumAlreadyVoted", proposalId=proposal_id, voter=self._sender)
        return self._vote(proposal_id)

    # --- reads --------------------------------------------------------------------------

    def role_changes(self) -> list[RoleChange]:
        """Every role and edge-registration change in chain order (the admin's at block 0)."""
        admins = sorted(self._chain.roles.get(DEFAULT_ADMIN_ROLE, set()))
        initial = [RoleChange(0, 0, i, DEFAULT_ADMIN_ROLE, a, True) for i, a in enumerate(admins)]
        return initial + list(self._chain.role_changes)

    def has_role_at(self, role: bytes, account: str, block: int) -> bool:
        """Whether ``account`` held ``role`` at the end of ``block`` (as ``eth_call`` there)."""
        account, held = to_checksum_address(account), False
        for change in self.role_changes():
            if change.block <= block and change.role == bytes(role) and change.account == account:
                held = change.granted
        return held

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

    def required_votes(self) -> int:
        """Live votes a proposal needs now: ceil(edges * percent / 100), at least 1."""
        edges = len(self._chain.roles.get(EDGE_ROLE, set()))
        return max(1, -(-edges * self._chain.vote_quorum_percent // 100))

    def get_proposal(self, proposal_id: int) -> Proposal:
        """One membership proposal, or ConsortiumUnknownProposal."""
        if not 1 <= proposal_id <= len(self._chain.proposals):
            raise revert("ConsortiumUnknownProposal", proposalId=proposal_id)
        return self._chain.proposals[proposal_id - 1]

    def list_proposals(self) -> list[Proposal]:
        """Every membership proposal, oldest first."""
        return list(self._chain.proposals)

    # --- rules --------------------------------------------------------------------------

    def _vote(self, proposal_id: int) -> bool:
        proposal = self.get_proposal(proposal_id)
        proposal = dataclasses.replace(proposal, voters=(*proposal.voters, self._sender))
        live = sum(self.has_role(EDGE_ROLE, voter) for voter in proposal.voters)
        if live >= self.required_votes():
            self._require_executable(
                proposal.action, proposal.role, proposal.account, proposal.validator
            )
            proposal = dataclasses.replace(proposal, executed=True)
            self._execute(proposal)
        self._chain.proposals[proposal_id - 1] = proposal
        self._chain.mine(self._sender)
        return proposal.executed

    def _execute(self, proposal: Proposal) -> None:
        if proposal.action == ProposalAction.ADD:
            if proposal.role == EDGE_ROLE:
                self._register(proposal.account, proposal.validator, proposal.name)
            self._set_role(proposal.role, proposal.account, granted=True)
        else:
            if proposal.role == EDGE_ROLE and self._chain.edges.pop(proposal.account, None):
                self._log_change(REGISTERED_EDGE, proposal.account, granted=False)
            self._set_role(proposal.role, proposal.account, granted=False)

    def _require_executable(
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

    def _require_registrable(self, edge: str, validator: str) -> None:
        if edge == ZERO_ADDRESS:
            raise revert("ConsortiumInvalidEdge", edge=edge)
        if validator == ZERO_ADDRESS:
            raise revert("ConsortiumInvalidValidator", validator=validator)
        if edge in self._chain.edges:
            raise revert("ConsortiumEdgeAlreadyRegistered", edge=edge)
        for other, (taken, _) in self._chain.edges.items():
            if taken == validator:
                raise revert("ConsortiumValidatorAlreadyRegistered", validator=validator, edge=other)

    def _register(self, edge: str, validator: str, name: str) -> None:
        self._chain.edges[edge] = (validator, name)
        self._set_role(EDGE_ROLE, edge, granted=True)
        self._log_change(REGISTERED_EDGE, edge, granted=True)

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
