// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @dev The forge cheatcodes these tests use (forge-std is not vendored: the build is offline).
interface Cheats {
    function prank(address sender) external;
    function assume(bool condition) external pure;
    function expectRevert(bytes calldata revertData) external;
    function warp(uint256 timestamp) external;
}

Cheats constant vm = Cheats(address(uint160(uint256(keccak256("hevm cheat code")))));
