// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

// A stand-in for Arbitrum Nitro's BoLD rollup core (@arbitrum/nitro-contracts 3.2.0: RollupCore,
// RollupUserLogic, RollupLib) on the devnet's L1; docs/l1.md says why the real one is not deployed.
// What it keeps of the real contract:
// - the events AssertionCreated and AssertionConfirmed with the real signatures (the structs below have
//   the real names, fields and order, so the ABI entries are identical);
// - the assertion hash: keccak256(parent, keccak256(abi.encode(afterState)), inboxAcc), where inboxAcc is
//   the real Bridge's sequencerInboxAccs(afterInboxPosition - 1); the genesis assertion as the real one
//   computes it, created (and emitted) at construction and confirmed;
// - the inbox rules of createNewAssertion: an assertion moves the inbox position forward, never past the
//   parent's nextInboxPosition nor past the Bridge's sequencerMessageCount, and its nextInboxPosition is
//   the message count at its creation (plus one when it consumed everything);
// - confirmation: pending, its parent the latest confirmed, confirmPeriodBlocks after its creation;
// - latestConfirmed() (bytes32), genesisAssertionHash(), confirmPeriodBlocks(), bridge(), and owner()
//   (as the Bridge's `rollup`, it names who may configure the Bridge and the SequencerInbox).
// What it leaves out: stakes, the stake token, challenges and the challenge manager, the outbox, rival
// assertions (the chain of assertions is linear), pausing and upgrades. One validator asserts and confirms.

interface IBridgeAccumulators {
    function sequencerMessageCount() external view returns (uint256);
    function sequencerInboxAccs(uint256 index) external view returns (bytes32);
}

struct GlobalState {
    bytes32[2] bytes32Vals;
    uint64[2] u64Vals;
}

enum MachineStatus {
    RUNNING,
    FINISHED,
    ERRORED
}

struct AssertionState {
    GlobalState globalState;
    MachineStatus machineStatus;
    bytes32 endHistoryRoot;
}

struct ConfigData {
    bytes32 wasmModuleRoot;
    uint256 requiredStake;
    address challengeManager;
    uint64 confirmPeriodBlocks;
    uint64 nextInboxPosition;
}

struct BeforeStateData {
    bytes32 prevPrevAssertionHash;
    bytes32 sequencerBatchAcc;
    ConfigData configData;
}

struct AssertionInputs {
    BeforeStateData beforeStateData;
    AssertionState beforeState;
    AssertionState afterState;
}

/// @title StandInRollup
/// @notice The devnet's rollup core: real assertion events and hashes, no stakes and no challenges.
contract StandInRollup {
    enum AssertionStatus {
        NoAssertion,
        Pending,
        Confirmed
    }

    struct Assertion {
        AssertionStatus status;
        uint64 createdAtBlock;
        bytes32 parent;
        bytes32 blockHash;
        bytes32 sendRoot;
    }

    event AssertionCreated(
        bytes32 indexed assertionHash,
        bytes32 indexed parentAssertionHash,
        AssertionInputs assertion,
        bytes32 afterInboxBatchAcc,
        uint256 inboxMaxCount,
        bytes32 wasmModuleRoot,
        uint256 requiredStake,
        address challengeManager,
        uint64 confirmPeriodBlocks
    );

    event AssertionConfirmed(bytes32 indexed assertionHash, bytes32 blockHash, bytes32 sendRoot);

    address public immutable owner;
    address public immutable validator;
    IBridgeAccumulators public immutable bridge;
    uint64 public immutable confirmPeriodBlocks;
    bytes32 public constant wasmModuleRoot = bytes32(0);

    bytes32 public latestConfirmed;
    /// @notice The newest assertion; the next one extends it (the chain of assertions is linear).
    bytes32 public latestAssertion;
    /// @notice How far into the inbox the next assertion may read (the real ConfigData.nextInboxPosition).
    uint64 public nextInboxPosition;

    // What the next assertion's AssertionInputs repeat about the latest one.
    AssertionState internal _latestState;
    bytes32 internal _latestParent;
    bytes32 internal _latestInboxAcc;
    mapping(bytes32 => Assertion) internal _assertions;

    modifier onlyValidator() {
        require(msg.sender == validator, "NOT_VALIDATOR");
        _;
    }

    constructor(address bridge_, address owner_, address validator_, uint64 confirmPeriodBlocks_) {
        owner = owner_;
        validator = validator_;
        bridge = IBridgeAccumulators(bridge_);
        confirmPeriodBlocks = confirmPeriodBlocks_;

        AssertionInputs memory inputs;
        inputs.afterState.machineStatus = MachineStatus.FINISHED;
        bytes32 genesis = genesisAssertionHash();
        uint256 inboxCount = IBridgeAccumulators(bridge_).sequencerMessageCount();
        // As the real initialize: the first assertion must read at least one message.
        if (inboxCount == 0) inboxCount = 1;

        _assertions[genesis] = Assertion(AssertionStatus.Confirmed, uint64(block.number), bytes32(0), 0, 0);
        _latestState = inputs.afterState;
        latestConfirmed = genesis;
        latestAssertion = genesis;
        nextInboxPosition = uint64(inboxCount);
        emit AssertionCreated(
            genesis, bytes32(0), inputs, bytes32(0), inboxCount, wasmModuleRoot, 0, address(0), confirmPeriodBlocks_
        );
    }

    /// @notice The real RollupCore's genesis assertion hash for an empty genesis state.
    function genesisAssertionHash() public pure returns (bytes32) {
        AssertionState memory empty;
        empty.machineStatus = MachineStatus.FINISHED;
        return assertionHash(bytes32(0), empty, bytes32(0));
    }

    /// @notice RollupLib.assertionHash.
    function assertionHash(bytes32 parent, AssertionState memory afterState, bytes32 inboxAcc)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encodePacked(parent, keccak256(abi.encode(afterState)), inboxAcc));
    }

    /// @notice Asserts that reading the inbox up to `inboxPosition` (a message count) gives the L2 block
    /// `blockHash` with `sendRoot`; the new assertion extends the latest one.
    function createAssertion(uint64 inboxPosition, bytes32 blockHash, bytes32 sendRoot)
        external
        onlyValidator
        returns (bytes32 newHash)
    {
        uint64 before = _latestState.globalState.u64Vals[0];
        require(inboxPosition > before, "INBOX_BACKWARDS");
        require(inboxPosition <= nextInboxPosition, "INBOX_TOO_FAR");
        uint256 inboxCount = bridge.sequencerMessageCount();
        require(inboxPosition <= inboxCount, "INBOX_PAST_END");

        AssertionInputs memory inputs;
        inputs.beforeStateData = BeforeStateData(
            _latestParent,
            _latestInboxAcc,
            ConfigData(wasmModuleRoot, 0, address(0), confirmPeriodBlocks, nextInboxPosition)
        );
        inputs.beforeState = _latestState;
        inputs.afterState.globalState.bytes32Vals = [blockHash, sendRoot];
        inputs.afterState.globalState.u64Vals = [inboxPosition, uint64(0)];
        inputs.afterState.machineStatus = MachineStatus.FINISHED;

        bytes32 inboxAcc = bridge.sequencerInboxAccs(inboxPosition - 1);
        bytes32 parent = latestAssertion;
        newHash = assertionHash(parent, inputs.afterState, inboxAcc);
        require(_assertions[newHash].status == AssertionStatus.NoAssertion, "ASSERTION_SEEN");

        uint256 next = inboxPosition == inboxCount ? inboxCount + 1 : inboxCount;
        _assertions[newHash] =
            Assertion(AssertionStatus.Pending, uint64(block.number), parent, blockHash, sendRoot);
        _latestState = inputs.afterState;
        _latestParent = parent;
        _latestInboxAcc = inboxAcc;
        latestAssertion = newHash;
        nextInboxPosition = uint64(next);
        emit AssertionCreated(
            newHash, parent, inputs, inboxAcc, next, wasmModuleRoot, 0, address(0), confirmPeriodBlocks
        );
    }

    /// @notice Confirms a pending assertion whose parent is the latest confirmed, confirmPeriodBlocks after
    /// its creation.
    function confirmAssertion(bytes32 assertionHash_) external onlyValidator {
        Assertion storage assertion = _assertions[assertionHash_];
        require(assertion.status == AssertionStatus.Pending, "NOT_PENDING");
        require(assertion.parent == latestConfirmed, "PREV_NOT_LATEST_CONFIRMED");
        require(block.number >= assertion.createdAtBlock + confirmPeriodBlocks, "BEFORE_DEADLINE");
        assertion.status = AssertionStatus.Confirmed;
        latestConfirmed = assertionHash_;
        emit AssertionConfirmed(assertionHash_, assertion.blockHash, assertion.sendRoot);
    }

    /// @notice 0 no assertion, 1 pending, 2 confirmed (the real AssertionStatus).
    function assertionStatus(bytes32 assertionHash_) external view returns (AssertionStatus) {
        return _assertions[assertionHash_].status;
    }

    function assertionCreatedAtBlock(bytes32 assertionHash_) external view returns (uint64) {
        return _assertions[assertionHash_].createdAtBlock;
    }
}
