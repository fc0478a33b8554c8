// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Reverter
/// @notice A call to `fail` always reverts, after a fixed amount of work, with `Refused(tag)`.
contract Reverter {
    error Refused(uint256 tag);

    function fail(uint256 tag) external pure {
        revert Refused(tag);
    }
}
