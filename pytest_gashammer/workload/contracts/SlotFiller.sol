// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title SlotFiller
/// @notice Every call writes `count` storage slots that have never been written before, with
/// nonzero values derived from the caller's `salt`.
/// @dev Each caller owns a region of slots and a cursor to the first unwritten one. A call writes
/// the next `count` slots of its region (zero to nonzero, 22,100 gas each while cold) and moves
/// the cursor. `prime` sets a caller's cursor to 1 ahead of time, so the cursor update of every
/// later call is a nonzero-to-nonzero write and the gas of a call depends only on `count`.
contract SlotFiller {
    /// Index of the first unwritten slot of each caller's region; 0 until primed or first used.
    mapping(address => uint256) public cursor;
    mapping(address => mapping(uint256 => uint256)) public cells;

    /// @notice Start the cursors of `writers` at 1 (writers already started are left alone).
    function prime(address[] calldata writers) external {
        uint256 count = writers.length;
        for (uint256 i = 0; i < count; ++i) {
            address writer = writers[i];
            if (cursor[writer] == 0) cursor[writer] = 1;
        }
    }

    /// @notice Write `count` fresh slots of the caller's region with `salt ^ index`, which is
    /// nonzero whenever `salt` exceeds every index (a salt with a nonzero top byte always does).
    function fill(uint256 count, uint256 salt) external {
        uint256 start = cursor[msg.sender];
        if (start == 0) start = 1;
        mapping(uint256 => uint256) storage region = cells[msg.sender];
        uint256 end = start + count;
        for (uint256 i = start; i < end; ++i) {
            region[i] = salt ^ i;
        }
        cursor[msg.sender] = end;
    }
}
