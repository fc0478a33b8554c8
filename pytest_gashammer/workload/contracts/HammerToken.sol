// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title HammerToken
/// @notice A minimal ERC-20 for load tests. The deployer mints to many holders in one call, so a
/// run's setup can hand a balance to hundreds of senders in a few transactions.
/// @dev `transfer` between two accounts that already hold a balance always takes the same path
/// and touches the same storage shape, so its gas is the same for every call.
contract HammerToken {
    string public constant name = "Hammer Token";
    string public constant symbol = "HMR";
    uint8 public constant decimals = 18;

    address public immutable minter;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    error NotMinter(address caller);
    error BalanceTooLow(address holder, uint256 held, uint256 wanted);
    error AllowanceTooLow(address holder, address spender, uint256 allowed, uint256 wanted);

    constructor() {
        minter = msg.sender;
    }

    /// @notice Credit `amount` to each of `holders`. Only the deployer may mint.
    function mint(address[] calldata holders, uint256 amount) external {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        uint256 count = holders.length;
        for (uint256 i = 0; i < count; ++i) {
            address holder = holders[i];
            balanceOf[holder] += amount;
            emit Transfer(address(0), holder, amount);
        }
        totalSupply += amount * count;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert AllowanceTooLow(from, msg.sender, allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) private {
        uint256 held = balanceOf[from];
        if (held < value) revert BalanceTooLow(from, held, value);
        unchecked {
            balanceOf[from] = held - value;
        }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
