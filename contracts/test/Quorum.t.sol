// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Consortium} from "../Consortium.sol";
import {TaskRegistry} from "../TaskRegistry.sol";
import {UpdateLedger} from "../UpdateLedger.sol";
import {ITaskRegistry} from "../interfaces/ITaskRegistry.sol";
import {vm} from "./Cheats.sol";

/// @dev Fuzzed properties of UpdateLedger's candidate sets: a commit lists exactly the
/// unconsumed updates up to its cut-off (aggregated or rejected), and min_updates counts
/// distinct edges.
contract QuorumFuzzTest {
    Consortium private consortium;
    TaskRegistry private registry;
    UpdateLedger private ledger;
    address[4] private edges = [address(0xE0), address(0xE1), address(0xE2), address(0xE3)];

    function setUp() public {
        consortium = new Consortium(0, 7 days);
        registry = new TaskRegistry(consortium);
        ledger = new UpdateLedger(consortium, registry);
        registry.setLedger(address(ledger));
        consortium.grantRole(consortium.PUBLISHER_ROLE(), address(this));
        consortium.grantRole(consortium.AGGREGATOR_ROLE(), address(this));
        for (uint160 i = 0; i < 4; ++i) {
            consortium.registerEdge(edges[i], address(0xF0 + i), "edge");
        }
    }

    /// @dev Four updates of four edges; `mask` picks the listed ones (bit i: update i), `split`
    /// which of the listed are rejected rather than aggregated. Accepted iff the listed updates
    /// are a non-empty prefix with at least one aggregated update.
    function testFuzz_aCommitListsExactlyAPrefixOfTheUnconsumedUpdates(uint8 mask, uint8 split)
        public
    {
        mask = mask % 16;
        uint256 task = registry.publishTask("{}", ITaskRegistry.TaskParams(2, 1, 0, 0, 0, 1, 100_000), "m");
        uint256[4] memory ids;
        for (uint256 i = 0; i < 4; ++i) {
            vm.prank(edges[i]);
            ids[i] = ledger.submitUpdate(task, 0, 1, 0, "u");
        }
        (uint256[] memory aggregated, uint256[] memory rejected) = _lists(ids, mask, split);
        bool prefix = mask == 1 || mask == 3 || mask == 7 || mask == 15;
        bool ok = prefix && aggregated.length > 0;
        try ledger.commitGlobalModel(task, 1, aggregated, rejected, "g") {
            require(ok, "accepted a commit that is not the whole candidate set");
            require(ledger.candidateCutoff(task, 1) != 0, "cut-off fixed");
        } catch {
            require(!ok, "refused a whole candidate set");
        }
    }

    /// @dev However many base versions one edge submits on, its updates fill no version of a
    /// task that needs two distinct edges.
    function testFuzz_oneEdgeNeverFillsAVersion(uint8 bases) public {
        uint32 count = uint32(bases % 4) + 2;
        uint256 task = registry.publishTask(
            "{}", ITaskRegistry.TaskParams(count + 2, 2, count, 0, 0, 1, 100_000), "m"
        );
        uint256[] memory first = new uint256[](2);
        for (uint256 i = 0; i < 2; ++i) {
            vm.prank(edges[i + 1]);
            first[i] = ledger.submitUpdate(task, 0, 1, 0, "u");
        }
        ledger.commitGlobalModel(task, 1, first, new uint256[](0), "g1");
        uint256[] memory alone = new uint256[](2);
        for (uint32 base = 0; base < 2; ++base) {
            vm.prank(edges[0]);
            alone[base] = ledger.submitUpdate(task, base, 1, 0, "u");
        }
        try ledger.commitGlobalModel(task, 2, alone, new uint256[](0), "g2") {
            revert("one edge filled a version");
        } catch {}
        require(ledger.latestVersion(task) == 1, "still version 1");
    }

    function _lists(uint256[4] memory ids, uint8 mask, uint8 split)
        private
        pure
        returns (uint256[] memory aggregated, uint256[] memory rejected)
    {
        uint256 a = 0;
        uint256 r = 0;
        for (uint256 i = 0; i < 4; ++i) {
            if (mask & (1 << i) == 0) continue;
            if (split & (1 << i) == 0) ++a;
            else ++r;
        }
        aggregated = new uint256[](a);
        rejected = new uint256[](r);
        (a, r) = (0, 0);
        for (uint256 i = 0; i < 4; ++i) {
            if (mask & (1 << i) == 0) continue;
            if (split & (1 << i) == 0) aggregated[a++] = ids[i];
            else rejected[r++] = ids[i];
        }
    }
}
