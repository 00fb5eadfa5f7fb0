// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Consortium} from "../Consortium.sol";
import {TaskRegistry} from "../TaskRegistry.sol";
import {UpdateLedger} from "../UpdateLedger.sol";
import {IConsortium} from "../interfaces/IConsortium.sol";
import {ITaskRegistry} from "../interfaces/ITaskRegistry.sol";
import {IUpdateLedger} from "../interfaces/IUpdateLedger.sol";
import {vm} from "./Cheats.sol";

uint64 constant BUDGET = 1_000_000;
uint32 constant QUORUM = 2;
uint64 constant PERIOD = 7 days;

/// @dev Drives random submissions, commits, proposals and votes; keeps ghost role state that
/// changes only when a proposal flips to executed.
contract GovernanceHandler {
    Consortium public immutable consortium;
    UpdateLedger public immutable ledger;
    uint256 public immutable taskId;
    address[6] public candidates;
    address[3] public aggregators;
    mapping(address account => bool) public ghostEdge;

    constructor(Consortium consortium_, UpdateLedger ledger_, uint256 taskId_) {
        consortium = consortium_;
        ledger = ledger_;
        taskId = taskId_;
        for (uint160 i = 0; i < 6; ++i) candidates[i] = address(0xE000 + i);
        for (uint160 i = 0; i < 3; ++i) aggregators[i] = address(0xA000 + i);
        for (uint256 i = 0; i < 3; ++i) ghostEdge[candidates[i]] = true;
    }

    function submit(uint256 who, uint32 base, uint64 epsilon) external {
        address edge = candidates[who % 6];
        uint32 latest = ledger.latestVersion(taskId);
        vm.prank(edge);
        try ledger.submitUpdate(taskId, base % (latest + 1), 1, epsilon % 700_000, "u") {} catch {}
    }

    function commit(uint256 who, bool alternative) external {
        uint256 last = ledger.updateCount();
        if (last == 0) return;
        uint256[] memory ids = new uint256[](1);
        ids[0] = last;
        uint32 next = ledger.latestVersion(taskId) + 1; // read before the prank: a call uses it up
        vm.prank(aggregators[who % 3]);
        try ledger.commitGlobalModel(
            taskId, next, ids, new uint256[](0), alternative ? bytes("b") : bytes("a")
        ) {} catch {}
    }

    function propose(uint256 who, uint256 target, bool remove) external {
        address account = candidates[target % 6];
        address validator = address(uint160(0xF000 + target % 6));
        IConsortium.ProposalAction action =
            remove ? IConsortium.ProposalAction.Remove : IConsortium.ProposalAction.Add;
        bytes32 edgeRole = consortium.EDGE_ROLE(); // read before the prank: a call uses it up
        vm.prank(candidates[who % 6]);
        try consortium.propose(action, edgeRole, account, validator, "n") returns (uint256 id) {
            _track(id);
        } catch {}
    }

    function vote(uint256 who, uint256 proposalId) external {
        uint256 count = consortium.proposalCount();
        if (count == 0) return;
        uint256 id = proposalId % count + 1;
        vm.prank(candidates[who % 6]);
        try consortium.vote(id) {
            _track(id);
        } catch {}
    }

    function renounce(uint256 who) external {
        address edge = candidates[who % 6];
        bytes32 edgeRole = consortium.EDGE_ROLE();
        vm.prank(edge);
        try consortium.renounceRole(edgeRole, edge) {
            ghostEdge[edge] = false;
        } catch {}
    }

    function proposeQuorum(uint256 who, uint16 percent) external {
        vm.prank(candidates[who % 6]);
        try consortium.proposeQuorum(percent) {} catch {}
    }

    function cancel(uint256 who, uint256 proposalId) external {
        uint256 count = consortium.proposalCount();
        if (count == 0) return;
        vm.prank(candidates[who % 6]);
        try consortium.cancel(proposalId % count + 1) {} catch {}
    }

    function wait(uint32 seconds_) external {
        vm.warp(block.timestamp + seconds_ % (2 * PERIOD));
    }

    function _track(uint256 id) private {
        IConsortium.Proposal memory entry = consortium.proposal(id);
        bool membership = entry.action == IConsortium.ProposalAction.Add
            || entry.action == IConsortium.ProposalAction.Remove;
        if (entry.executed && membership) {
            ghostEdge[entry.account] = entry.action == IConsortium.ProposalAction.Add;
        }
    }
}

/// @dev Invariants: one submission per edge per version, the privacy budget is never
/// exceeded, a final version has `QUORUM` agreeing commits, EDGE_ROLE changes only by vote or
/// by its holder's renouncement, the registry holds exactly the EDGE_ROLE holders, at least one
/// edge remains, and the quorum stays strictly above half of the edges.
contract GovernanceInvariantTest {
    Consortium private consortium;
    TaskRegistry private registry;
    UpdateLedger private ledger;
    GovernanceHandler private handler;
    uint256 private taskId;

    function setUp() public {
        consortium = new Consortium(0, PERIOD);
        registry = new TaskRegistry(consortium);
        ledger = new UpdateLedger(consortium, registry);
        registry.setLedger(address(ledger));
        consortium.grantRole(consortium.PUBLISHER_ROLE(), address(this));
        taskId = registry.publishTask(
            "{}", ITaskRegistry.TaskParams(1_000, 1, 3, 0, BUDGET, QUORUM, 100_000), "initial"
        );
        handler = new GovernanceHandler(consortium, ledger, taskId);
        for (uint256 i = 0; i < 3; ++i) {
            consortium.grantRole(consortium.AGGREGATOR_ROLE(), handler.aggregators(i));
            consortium.registerEdge(handler.candidates(i), address(uint160(0xF000 + i)), "edge");
        }
        consortium.endBootstrap();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function invariant_oneSubmissionPerEdgePerVersion() public view {
        uint256 count = ledger.updateCount();
        for (uint256 id = 1; id <= count; ++id) {
            IUpdateLedger.Update memory entry = ledger.update(id);
            require(ledger.submissionOf(taskId, entry.baseVersion, entry.edge) == id, "duplicate");
        }
    }

    function invariant_budgetNeverExceeded() public view {
        for (uint256 i = 0; i < 6; ++i) {
            require(ledger.epsilonSpent(taskId, handler.candidates(i)) <= BUDGET, "budget");
        }
    }

    function invariant_finalVersionHasQuorum() public view {
        uint32 latest = ledger.latestVersion(taskId);
        for (uint32 v = 1; v <= latest; ++v) {
            IUpdateLedger.GlobalModel memory model = ledger.globalModel(taskId, v);
            IUpdateLedger.Commit[] memory commits = ledger.commits(taskId, v);
            bytes32 finalHash;
            for (uint256 i = 0; i < commits.length; ++i) {
                if (commits[i].aggregator == model.aggregator) finalHash = commits[i].commitHash;
            }
            uint256 agreeing = 0;
            for (uint256 i = 0; i < commits.length; ++i) {
                if (commits[i].commitHash == finalHash && commits[i].digest == model.digest) agreeing += 1;
            }
            require(agreeing >= QUORUM, "quorum");
        }
    }

    function invariant_rolesChangeOnlyByVote() public view {
        bytes32 edgeRole = consortium.EDGE_ROLE();
        uint256 members = 0;
        for (uint256 i = 0; i < 6; ++i) {
            address account = handler.candidates(i);
            require(consortium.hasRole(edgeRole, account) == handler.ghostEdge(account), "role");
            if (handler.ghostEdge(account)) members += 1;
        }
        require(consortium.edgeCount() == members, "count");
    }

    function invariant_registryFollowsEdgeRole() public view {
        bytes32 edgeRole = consortium.EDGE_ROLE();
        uint256 registered = consortium.edges().length;
        require(registered == consortium.edgeCount() && registered >= 1, "registry size");
        for (uint256 i = 0; i < 6; ++i) {
            address account = handler.candidates(i);
            bool listed = consortium.validatorOf(account) != address(0);
            require(consortium.hasRole(edgeRole, account) == listed, "registry");
        }
    }

    function invariant_quorumStaysAboveHalf() public view {
        require(consortium.voteQuorumPercent() >= consortium.MIN_VOTE_QUORUM_PERCENT(), "floor");
        require(consortium.requiredVotes() * 2 > consortium.edgeCount(), "majority");
    }
}

/// @dev Fuzzed properties of the quorum floor and of proposal expiry and cancellation.
contract GovernanceFloorExpiryTest {
    Consortium private consortium;
    address private constant FIRST = address(0xE0);
    address private constant SECOND = address(0xE1);

    function setUp() public {
        consortium = new Consortium(0, PERIOD);
    }

    function _register(uint256 count) private {
        for (uint160 i = 0; i < count; ++i) {
            consortium.registerEdge(address(0xE0 + i), address(0xF000 + i), "edge");
        }
    }

    function testFuzz_quorumAtOrBelowHalfIsRefused(uint16 percent, uint8 edgeCount) public {
        _register(uint256(edgeCount) % 24 + 1);
        if (percent > 100) {
            vm.expectRevert(abi.encodeWithSelector(IConsortium.ConsortiumInvalidQuorum.selector, percent));
        } else if (percent < 51) {
            vm.expectRevert(
                abi.encodeWithSelector(IConsortium.ConsortiumQuorumBelowFloor.selector, percent, uint16(51))
            );
        }
        consortium.setVoteQuorum(percent);
        require(consortium.requiredVotes() * 2 > consortium.edgeCount(), "strictly above half");
    }

    function testFuzz_quorumProposalBelowTheFloorIsRefused(uint16 percent) public {
        _register(3);
        consortium.endBootstrap();
        if (percent >= 51 && percent <= 100) return;
        if (percent > 100) {
            vm.expectRevert(abi.encodeWithSelector(IConsortium.ConsortiumInvalidQuorum.selector, percent));
        } else {
            vm.expectRevert(
                abi.encodeWithSelector(IConsortium.ConsortiumQuorumBelowFloor.selector, percent, uint16(51))
            );
        }
        vm.prank(FIRST);
        consortium.proposeQuorum(percent);
    }

    function testFuzz_voteCountsUntilTheDeadlineOnly(uint64 elapsed) public {
        _register(3);
        consortium.endBootstrap();
        bytes32 auditor = consortium.AUDITOR_ROLE();
        vm.prank(FIRST);
        uint256 id = consortium.propose(IConsortium.ProposalAction.Add, auditor, address(0xA), address(0), "");
        uint64 deadline = consortium.proposal(id).deadline;
        require(deadline == block.timestamp + PERIOD, "deadline fixed at creation");
        elapsed = elapsed % (3 * PERIOD);
        vm.warp(block.timestamp + elapsed);
        if (block.timestamp > deadline) {
            require(consortium.state(id) == IConsortium.ProposalState.Expired, "expired");
            vm.expectRevert(abi.encodeWithSelector(IConsortium.ConsortiumProposalExpired.selector, id, deadline));
        }
        vm.prank(SECOND);
        consortium.vote(id);
        require(consortium.hasRole(auditor, address(0xA)) == (elapsed <= PERIOD), "role");
    }

    function testFuzz_onlyTheProposerCancels(address caller) public {
        _register(3);
        bytes32 auditor = consortium.AUDITOR_ROLE();
        vm.prank(FIRST);
        uint256 id = consortium.propose(IConsortium.ProposalAction.Add, auditor, address(0xA), address(0), "");
        if (caller != FIRST) {
            vm.expectRevert(abi.encodeWithSelector(IConsortium.ConsortiumNotProposer.selector, id, caller));
        }
        vm.prank(caller);
        consortium.cancel(id);
        bool cancelled = consortium.state(id) == IConsortium.ProposalState.Cancelled;
        require(cancelled == (caller == FIRST), "cancelled");
    }

    function test_zeroVotingPeriodIsRefused() public {
        vm.expectRevert(abi.encodeWithSelector(IConsortium.ConsortiumInvalidVotingPeriod.selector, uint64(0)));
        new Consortium(0, 0);
    }
}

/// @dev Fuzzed single properties.
contract GovernanceFuzzTest {
    Consortium private consortium;
    TaskRegistry private registry;
    UpdateLedger private ledger;
    address private constant EDGE = address(0xE0);

    function setUp() public {
        consortium = new Consortium(0, PERIOD);
        registry = new TaskRegistry(consortium);
        ledger = new UpdateLedger(consortium, registry);
        registry.setLedger(address(ledger));
        consortium.grantRole(consortium.PUBLISHER_ROLE(), address(this));
        consortium.registerEdge(EDGE, address(0xF0), "edge");
    }

    function testFuzz_secondSubmissionOnAVersionReverts(bytes calldata first, bytes calldata second) public {
        vm.assume(first.length > 0 && second.length > 0 && first.length < 4096 && second.length < 4096);
        uint256 task = registry.publishTask("{}", ITaskRegistry.TaskParams(2, 1, 0, 0, 0, 1, 100_000), "m");
        vm.prank(EDGE);
        ledger.submitUpdate(task, 0, 1, 0, first);
        vm.expectRevert(
            abi.encodeWithSelector(IUpdateLedger.UpdateLedgerDuplicateSubmission.selector, task, uint32(0), EDGE)
        );
        vm.prank(EDGE);
        ledger.submitUpdate(task, 0, 1, 0, second);
    }

    function testFuzz_spendBeyondBudgetReverts(uint64 budget, uint64 spend) public {
        vm.assume(budget > 0);
        uint256 task = registry.publishTask("{}", ITaskRegistry.TaskParams(2, 1, 0, 0, budget, 1, 100_000), "m");
        if (spend == 0) {
            vm.expectRevert(
                abi.encodeWithSelector(IUpdateLedger.UpdateLedgerZeroPrivacySpend.selector, task, budget)
            );
        } else if (spend > budget) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IUpdateLedger.UpdateLedgerPrivacyBudgetExceeded.selector, task, EDGE, uint64(0), spend, budget
                )
            );
        }
        vm.prank(EDGE);
        ledger.submitUpdate(task, 0, 1, spend, "u");
        if (spend != 0 && spend <= budget) require(ledger.epsilonSpent(task, EDGE) == spend, "spent");
    }

    function testFuzz_examplesOverTheCapRevert(uint64 cap, uint64 count) public {
        vm.assume(cap > 0 && count > 0);
        uint256 task = registry.publishTask("{}", ITaskRegistry.TaskParams(2, 1, 0, 0, 0, 1, cap), "m");
        if (count > cap) {
            vm.expectRevert(
                abi.encodeWithSelector(IUpdateLedger.UpdateLedgerTooManyExamples.selector, count, cap)
            );
        }
        vm.prank(EDGE);
        ledger.submitUpdate(task, 0, count, 0, "u");
        if (count <= cap) require(ledger.update(1).numExamples == count, "stored");
    }
}
