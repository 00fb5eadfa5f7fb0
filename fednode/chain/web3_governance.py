"""Chain: the consortium-governance half of Web3Ledger (members, proposals, votes, facts).

Mixed into ``Web3Ledger``: membership writes (bootstrap-time admin calls, proposals, votes),
membership reads, and the ledger facts governance relies on (every aggregator commit, privacy
spend, reputation). ``InMemoryLedger`` offers the same methods with the same refusals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from fednode.chain.records import (
    GlobalModelCommit,
    Proposal,
    ProposalAction,
    ProposalState,
    Reputation,
)
from fednode.chain.roles import REGISTERED_EDGE, RoleChange
from fednode.errors import ChainError

__all__ = ["Web3Governance"]

ZERO_ADDRESS = "0x" + "00" * 20
_ROLE_EVENTS = (("RoleGranted", True), ("RoleRevoked", False))
_EDGE_EVENTS = (("EdgeRegistered", True), ("EdgeRemoved", False))


class Web3Governance:
    """Governance methods of ``Web3Ledger``; relies on its contracts and helpers."""

    consortium: Contract
    ledger: Contract
    deployment: Any
    w3: Any
    _reader: Any

    if TYPE_CHECKING:  # provided by Web3Ledger, which mixes this class in

        def _transact(self, contract: Contract, fn_name: str, args: list[Any]) -> TxReceipt: ...

        def _event(self, contract: Contract, name: str, receipt: TxReceipt) -> Any: ...

        def _call(self, fn: Any) -> Any: ...

        def _read(self, read: Any) -> Any: ...

    # --- bootstrap (admin) ----------------------------------------------------------------

    def grant_role(self, role: bytes, account: str) -> None:
        """Grants ``role`` to ``account``; admin only, while bootstrapping."""
        self._transact(self.consortium, "grantRole", [role, to_checksum_address(account)])

    def revoke_role(self, role: bytes, account: str) -> None:
        """Revokes ``role`` from ``account``; admin only, while bootstrapping. Revoking
        EDGE_ROLE unregisters the edge too and never takes it from the last edge."""
        self._transact(self.consortium, "revokeRole", [role, to_checksum_address(account)])

    def renounce_role(self, role: bytes, account: str) -> None:
        """Gives up the sender's own ``role`` (``account`` must be the sender); an edge leaves
        the registry with it, the last edge cannot, the admin only while bootstrapping."""
        self._transact(self.consortium, "renounceRole", [role, to_checksum_address(account)])

    def register_edge(self, edge: str, validator: str, name: str) -> None:
        """Registers ``edge`` with its validator and grants EDGE_ROLE; admin, bootstrapping."""
        args = [to_checksum_address(edge), to_checksum_address(validator), name]
        self._transact(self.consortium, "registerEdge", args)

    def end_bootstrap(self) -> None:
        """Ends the bootstrap phase: from now on roles change only by vote (admin only)."""
        self._transact(self.consortium, "endBootstrap", [])

    def set_vote_quorum(self, percent: int) -> None:
        """Sets the share of edge operators (51..100 %) a proposal needs; admin, bootstrap only."""
        self._transact(self.consortium, "setVoteQuorum", [percent])

    # --- proposals (edge operators) -------------------------------------------------------

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
        args = [int(action), role, to_checksum_address(account), to_checksum_address(validator),
                name]
        receipt = self._transact(self.consortium, "propose", args)
        return int(self._event(self.consortium, "ProposalCreated", receipt)["proposalId"])

    def propose_quorum(self, percent: int) -> int:
        """Proposes to set the vote quorum to ``percent`` (51..100); returns the proposal id."""
        return self._propose("proposeQuorum", [percent])

    def propose_admin_transfer(self, new_admin: str) -> int:
        """Proposes to make ``new_admin`` the admin; returns the proposal id."""
        return self._propose("proposeAdminTransfer", [to_checksum_address(new_admin)])

    def propose_admin_renounce(self) -> int:
        """Proposes that the current admin lose its role; returns the proposal id."""
        return self._propose("proposeAdminRenounce", [])

    def vote(self, proposal_id: int) -> bool:
        """Votes for a proposal; returns whether this vote executed it."""
        receipt = self._transact(self.consortium, "vote", [proposal_id])
        event = self.consortium.events.ProposalExecuted()
        executed = event.process_receipt(receipt, errors=DISCARD)
        return bool(executed)

    def cancel_proposal(self, proposal_id: int) -> None:
        """Cancels the sender's own active proposal."""
        self._transact(self.consortium, "cancel", [proposal_id])

    def _propose(self, fn_name: str, args: list[Any]) -> int:
        receipt = self._transact(self.consortium, fn_name, args)
        return int(self._event(self.consortium, "ProposalCreated", receipt)["proposalId"])

    # --- reads ----------------------------------------------------------------------------

    def bootstrapping(self) -> bool:
        """Whether the admin may still grant and revoke roles directly."""
        return bool(self._call(self.consortium.functions.bootstrapping()))

    def required_votes(self) -> int:
        """Live votes a proposal needs now."""
        return int(self._call(self.consortium.functions.requiredVotes()))

    def vote_quorum_percent(self) -> int:
        """The vote quorum in percent of the edge operators."""
        return int(self._call(self.consortium.functions.voteQuorumPercent()))

    def voting_period(self) -> int:
        """Seconds a proposal stays open for votes after its creation."""
        return int(self._call(self.consortium.functions.votingPeriod()))

    def default_admin(self) -> str:
        """The admin (DEFAULT_ADMIN_ROLE holder), or the zero address if none."""
        return to_checksum_address(self._call(self.consortium.functions.defaultAdmin()))

    def proposal_state(self, proposal_id: int) -> ProposalState:
        """Lifecycle state of a proposal now, as ``Consortium.state``."""
        return ProposalState(int(self._call(self.consortium.functions.state(proposal_id))))

    def list_proposals(self) -> list[Proposal]:
        """Every proposal, oldest first."""
        count = int(self._call(self.consortium.functions.proposalCount()))
        return [self.get_proposal(i) for i in range(1, count + 1)]

    def get_proposal(self, proposal_id: int) -> Proposal:
        """One proposal."""
        raw = self._call(self.consortium.functions.proposal(proposal_id))
        (action, role, account, validator, proposer, executed, cancelled, quorum, deadline, name,
         voters) = raw
        return Proposal(
            proposal_id=proposal_id,
            action=ProposalAction(action),
            role=bytes(role),
            account=to_checksum_address(account),
            validator=to_checksum_address(validator),
            proposer=to_checksum_address(proposer),
            executed=bool(executed),
            name=str(name),
            voters=tuple(to_checksum_address(v) for v in voters),
            cancelled=bool(cancelled),
            quorum_percent=int(quorum),
            deadline=int(deadline),
        )

    def role_changes(self) -> list[RoleChange]:
        """Every RoleGranted/RoleRevoked and EdgeRegistered/EdgeRemoved since deployment,
        in chain order (edge registration under the pseudo role ``REGISTERED_EDGE``)."""
        return self._read(self._role_changes_until)

    def has_role_at(self, role: bytes, account: str, block: int) -> bool:
        """Whether ``account`` held ``role`` at the end of ``block`` (historical ``eth_call``;
        needs an archive node for blocks older than the last 128)."""
        fn = self.consortium.functions.hasRole(role, to_checksum_address(account))

        def read(head: int) -> bool:
            if not 0 <= block <= head:
                raise ChainError(f"block {block} is not on the chain yet (head {head})")
            if block < self.deployment.deploy_block:
                return False  # no Consortium yet, so no member
            return bool(fn.call(block_identifier=block))

        return self._read(read)

    def transaction_index(self, tx_hash: bytes) -> int:
        """Position of a mined transaction in its block."""
        return int(self._read(lambda _: self.w3.eth.get_transaction_receipt(tx_hash))[
            "transactionIndex"])

    def _role_changes_until(self, head: int) -> list[RoleChange]:
        changes = []
        step = self._reader.log_chunk_size
        for low in range(self.deployment.deploy_block, head + 1, step):
            high = min(low + step - 1, head)
            for name, granted in _ROLE_EVENTS + _EDGE_EVENTS:
                event = self.consortium.events[name]()
                for log in event.get_logs(from_block=low, to_block=high):
                    changes.append(_role_change(log, granted, edge=(name, granted) in _EDGE_EVENTS))
        return sorted(changes)

    def read_commits(self, task_id: int) -> list[GlobalModelCommit]:
        """Every aggregator commit of a task (final, pending or conflicting), in order."""
        return self._read(lambda head: self._reader.commits(task_id, head))

    def conflicted(self, task_id: int, version: int) -> bool:
        """Whether some commit of ``version`` disagreed with the first one."""
        return bool(self._call(self.ledger.functions.conflicted(task_id, version)))

    def candidate_cutoff(self, task_id: int, version: int) -> int:
        """The largest update id the first commit of ``version`` listed (0: no commit yet)."""
        return int(self._call(self.ledger.functions.candidateCutoff(task_id, version)))

    def contributions(self, task_id: int, edge: str) -> int:
        """How many of ``edge``'s updates final versions of a task aggregated."""
        fn = self.ledger.functions.contributions(task_id, to_checksum_address(edge))
        return int(self._call(fn))

    def epsilon_spent(self, task_id: int, edge: str) -> int:
        """Micro-epsilon ``edge`` has spent on a task."""
        fn = self.ledger.functions.epsilonSpent(task_id, to_checksum_address(edge))
        return int(self._call(fn))

    def reputation(self, edge: str) -> Reputation:
        """Ledger facts about ``edge`` (submitted, accepted, rejected, late)."""
        raw = self._call(self.ledger.functions.reputation(to_checksum_address(edge)))
        return Reputation(*(int(v) for v in raw))


def _role_change(log: Any, granted: bool, *, edge: bool) -> RoleChange:
    args = log["args"]
    role, account = (REGISTERED_EDGE, args["edge"]) if edge else (bytes(args["role"]),
                                                                   args["account"])
    return RoleChange(int(log["blockNumber"]), int(log["transactionIndex"]), int(log["logIndex"]),
                      role, to_checksum_address(account), granted)
