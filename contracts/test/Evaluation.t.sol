// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Consortium} from "../Consortium.sol";
import {EvaluationLedger} from "../EvaluationLedger.sol";
import {TaskRegistry} from "../TaskRegistry.sol";
import {UpdateLedger} from "../UpdateLedger.sol";
import {IEvaluationLedger, METRIC_SCALE_MICRO, NO_METRIC} from "../interfaces/IEvaluationLedger.sol";
import {ITaskRegistry} from "../interfaces/ITaskRegistry.sol";
import {vm} from "./Cheats.sol";

/// @dev Fuzzed properties of EvaluationLedger: range checks, one evaluation per edge and
/// version, only final versions other than 0, only edges that contributed to the task.
contract EvaluationFuzzTest {
    Consortium private consortium;
    TaskRegistry private registry;
    UpdateLedger private ledger;
    EvaluationLedger private evaluations;
    address private constant EDGE = address(0xE0);
    address private constant OTHER_EDGE = address(0xE1);
    address private constant IDLE_EDGE = address(0xE2);

    function setUp() public {
        consortium = new Consortium(0, 7 days);
        registry = new TaskRegistry(consortium);
        ledger = new UpdateLedger(consortium, registry);
        evaluations = new EvaluationLedger(consortium, ledger);
        registry.setLedger(address(ledger));
        consortium.grantRole(consortium.PUBLISHER_ROLE(), address(this));
        consortium.registerEdge(EDGE, address(0xF0), "edge");
        consortium.registerEdge(OTHER_EDGE, address(0xF1), "other");
        consortium.registerEdge(IDLE_EDGE, address(0xF2), "idle");
        consortium.grantRole(consortium.AGGREGATOR_ROLE(), address(this));
    }

    /// @dev A task at version 1, which aggregates one update of EDGE and one of OTHER_EDGE.
    function _task() private returns (uint256 task) {
        task = registry.publishTask("{}", ITaskRegistry.TaskParams(2, 1, 0, 0, 0, 1, 100_000), "m");
        uint256[] memory ids = new uint256[](2);
        vm.prank(EDGE);
        ids[0] = ledger.submitUpdate(task, 0, 1, 0, "u");
        vm.prank(OTHER_EDGE);
        ids[1] = ledger.submitUpdate(task, 0, 1, 0, "v");
        ledger.commitGlobalModel(task, 1, ids, new uint256[](0), "g");
    }

    function testFuzz_metricsOutsideTheUnitRangeRevert(uint32 metric, uint32 secondary) public {
        uint256 task = _task();
        bool metricOk = metric <= METRIC_SCALE_MICRO;
        bool secondaryOk = secondary <= METRIC_SCALE_MICRO || secondary == NO_METRIC;
        if (!metricOk) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IEvaluationLedger.EvaluationLedgerMetricOutOfRange.selector, metric, METRIC_SCALE_MICRO
                )
            );
        } else if (!secondaryOk) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IEvaluationLedger.EvaluationLedgerMetricOutOfRange.selector, secondary, METRIC_SCALE_MICRO
                )
            );
        }
        vm.prank(EDGE);
        evaluations.submitEvaluation(task, 1, metric, secondary, 1);
        if (metricOk && secondaryOk) {
            IEvaluationLedger.Evaluation[] memory stored = evaluations.evaluations(task, 1);
            require(stored.length == 1 && stored[0].metricMicro == metric, "stored");
            require(stored[0].secondaryMicro == secondary, "secondary");
        }
    }

    function testFuzz_secondEvaluationOfAVersionReverts(uint32 first, uint32 second) public {
        uint256 task = _task();
        first = first % (METRIC_SCALE_MICRO + 1);
        second = second % (METRIC_SCALE_MICRO + 1);
        vm.prank(EDGE);
        evaluations.submitEvaluation(task, 1, first, NO_METRIC, 1);
        vm.prank(OTHER_EDGE);
        evaluations.submitEvaluation(task, 1, second, NO_METRIC, 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IEvaluationLedger.EvaluationLedgerDuplicateEvaluation.selector, task, uint32(1), EDGE
            )
        );
        vm.prank(EDGE);
        evaluations.submitEvaluation(task, 1, second, NO_METRIC, 1);
        require(evaluations.evaluations(task, 1).length == 2, "two sites");
    }

    function testFuzz_onlyFinalVersionsCanBeEvaluated(uint32 version) public {
        uint256 task = _task();
        vm.assume(version > 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IEvaluationLedger.EvaluationLedgerUnknownVersion.selector, task, version, uint32(1)
            )
        );
        vm.prank(EDGE);
        evaluations.submitEvaluation(task, version, 1, NO_METRIC, 1);
    }

    function testFuzz_theInitialVersionIsNeverEvaluated(uint32 metric) public {
        uint256 task = _task();
        vm.expectRevert(
            abi.encodeWithSelector(IEvaluationLedger.EvaluationLedgerInitialVersion.selector, task)
        );
        vm.prank(EDGE);
        evaluations.submitEvaluation(task, 0, metric % (METRIC_SCALE_MICRO + 1), NO_METRIC, 1);
    }

    function testFuzz_onlyContributorsEvaluate(uint32 metric) public {
        uint256 task = _task();
        vm.expectRevert(
            abi.encodeWithSelector(
                IEvaluationLedger.EvaluationLedgerNotContributor.selector, task, IDLE_EDGE
            )
        );
        vm.prank(IDLE_EDGE);
        evaluations.submitEvaluation(task, 1, metric % (METRIC_SCALE_MICRO + 1), NO_METRIC, 1);
        require(ledger.contributions(task, EDGE) == 1, "contributor");
    }
}
