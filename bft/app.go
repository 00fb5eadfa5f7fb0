// Consensus: the ABCI++ application that turns CometBFT blocks into geth execution blocks.
//
// Every CometBFT block carries exactly one transaction: the RLP encoding of one execution block
// built by the proposer's geth. PrepareProposal asks geth for it (engine_forkchoiceUpdatedV3
// with payload attributes, then engine_getPayloadV3); ProcessProposal checks the deterministic
// fields and lets geth execute it (engine_newPayloadV3); FinalizeBlock imports it if needed and
// moves head = safe = finalized onto it (engine_forkchoiceUpdatedV3 without attributes). The
// application hash of a height is the hash of the execution block it finalized, so each
// CometBFT header binds the execution chain.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/ethereum/go-ethereum/beacon/engine"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/rlp"
)

// zeroHash is the parent beacon block root of every payload: there is no beacon chain.
var zeroHash = common.Hash{}

// feeRecipient receives the priority fees of every block (none are charged by the consortium's
// clients; a fixed address keeps the rule checkable by every validator).
var feeRecipient = common.Address{}

const (
	codeOK       = 0
	codeRejected = 1
	rpcTimeout   = 10 * time.Second
)

// committed is what the application persists after each Commit.
type committed struct {
	Height int64       `json:"height"`
	Head   common.Hash `json:"head"`
}

// App implements abcitypes.Application on top of one geth Engine API endpoint.
type App struct {
	abcitypes.BaseApplication

	eng       Engine
	log       cmtlog.Logger
	statePath string
	buildWait time.Duration

	// faultProposeInvalid (test only, --fault-propose-invalid) corrupts every proposal.
	faultProposeInvalid bool

	mu      sync.Mutex
	state   committed            // last committed height and execution head
	pending *committed           // set by FinalizeBlock, persisted by Commit
	valid   map[common.Hash]bool // payloads geth already accepted at this height
}

// NewApp loads the persisted state (if any) from statePath.
func NewApp(eng Engine, statePath string, buildWait time.Duration, log cmtlog.Logger) (*App, error) {
	app := &App{eng: eng, log: log, statePath: statePath, buildWait: buildWait,
		valid: map[common.Hash]bool{}}
	raw, err := os.ReadFile(statePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return app, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", statePath, err)
	}
	if err := json.Unmarshal(raw, &app.state); err != nil {
		return nil, fmt.Errorf("parse %s: %w", statePath, err)
	}
	return app, nil
}

func (a *App) save(s committed) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := a.statePath + ".tmp"
	if err := os.MkdirAll(filepath.Dir(a.statePath), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath)
}

// Info tells CometBFT which height the application (and so geth) has committed. After an
// unclean stop geth may have lost its newest blocks: the application then reports the height
// geth still holds, and CometBFT replays the rest from its block store through FinalizeBlock.
func (a *App) Info(ctx context.Context, _ *abcitypes.RequestInfo) (*abcitypes.ResponseInfo, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.alignWithGeth(ctx); err != nil {
		return nil, err
	}
	resp := &abcitypes.ResponseInfo{Data: "fednode-bft", Version: appVersion,
		LastBlockHeight: a.state.Height}
	if a.state.Height > 0 {
		resp.LastBlockAppHash = a.state.Head.Bytes()
	}
	return resp, nil
}

// alignWithGeth lowers the committed height to geth's head when geth is behind it. Every
// CometBFT height finalizes exactly one execution block, so height and block number agree,
// and geth's head is always a finalized block (only FinalizeBlock moves it).
func (a *App) alignWithGeth(ctx context.Context) error {
	if a.state.Height == 0 {
		return nil
	}
	head, err := a.eng.HeadHeader(ctx)
	if err != nil {
		return fmt.Errorf("read geth's head: %w", err)
	}
	if head.Number.Int64() >= a.state.Height {
		return nil
	}
	a.log.Info("geth is behind the committed height; CometBFT will replay the difference",
		"committed", a.state.Height, "geth_head", head.Number, "hash", head.Hash())
	a.state = committed{Height: head.Number.Int64(), Head: head.Hash()}
	return a.save(a.state)
}

// InitChain starts from geth's genesis block; its hash becomes the initial application hash.
func (a *App) InitChain(ctx context.Context, _ *abcitypes.RequestInitChain) (*abcitypes.ResponseInitChain, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	genesis, err := a.eng.HeaderByNumber(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("read the execution genesis: %w", err)
	}
	a.state = committed{Height: 0, Head: genesis.Hash()}
	if err := a.save(a.state); err != nil {
		return nil, err
	}
	a.log.Info("chain initialised", "execution_genesis", genesis.Hash())
	return &abcitypes.ResponseInitChain{AppHash: genesis.Hash().Bytes()}, nil
}

// CheckTx refuses everything: transactions reach the chain through geth's JSON-RPC, not
// through CometBFT's mempool.
func (a *App) CheckTx(_ context.Context, _ *abcitypes.RequestCheckTx) (*abcitypes.ResponseCheckTx, error) {
	return &abcitypes.ResponseCheckTx{Code: codeRejected,
		Log: "send transactions to geth (eth_sendRawTransaction), not to CometBFT"}, nil
}

// expectedTimestamp is the execution timestamp of the block after parent, taken from the
// CometBFT block time (identical on every validator), strictly above the parent's.
func expectedTimestamp(parentTime uint64, blockTime time.Time) uint64 {
	ts := uint64(0)
	if blockTime.Unix() > 0 {
		ts = uint64(blockTime.Unix())
	}
	if ts <= parentTime {
		ts = parentTime + 1
	}
	return ts
}

// randaoAt is the prevRandao of the execution block at a CometBFT height: deterministic and
// public (no contract of the consortium draws randomness from it).
func randaoAt(height int64) common.Hash {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(height))
	return crypto.Keccak256Hash([]byte("fednode-bft/prevRandao"), buf[:])
}

// PrepareProposal builds the next execution block on the committed head.
func (a *App) PrepareProposal(ctx context.Context, req *abcitypes.RequestPrepareProposal) (*abcitypes.ResponsePrepareProposal, error) {
	a.mu.Lock()
	head := a.state.Head
	a.mu.Unlock()
	payload, err := a.buildPayload(ctx, head, req.Height, req.Time)
	if err != nil {
		// An empty proposal is rejected by everyone; the next round's proposer tries again.
		a.log.Error("cannot build an execution payload", "height", req.Height, "err", err)
		return &abcitypes.ResponsePrepareProposal{}, nil
	}
	if int64(len(payload)) > req.MaxTxBytes {
		a.log.Error("execution payload exceeds the block size", "bytes", len(payload), "max", req.MaxTxBytes)
		return &abcitypes.ResponsePrepareProposal{}, nil
	}
	return &abcitypes.ResponsePrepareProposal{Txs: [][]byte{payload}}, nil
}

func (a *App) buildPayload(ctx context.Context, head common.Hash, height int64, blockTime time.Time) ([]byte, error) {
	parent, err := a.eng.HeaderByHash(ctx, head)
	if err != nil {
		return nil, fmt.Errorf("read head %s: %w", head, err)
	}
	attrs := &engine.PayloadAttributes{
		Timestamp:             expectedTimestamp(parent.Time, blockTime),
		Random:                randaoAt(height),
		SuggestedFeeRecipient: feeRecipient,
		Withdrawals:           []*types.Withdrawal{},
		BeaconRoot:            &zeroHash,
	}
	id, err := a.eng.StartBuild(ctx, head, attrs)
	if err != nil {
		return nil, err
	}
	// geth seals an empty block at once and fills a full one in the background.
	time.Sleep(a.buildWait)
	data, err := a.eng.GetPayload(ctx, id)
	if err != nil {
		return nil, err
	}
	block, err := engine.ExecutableDataToBlock(*data, blobHashes(data.Transactions), &zeroHash, nil)
	if err != nil {
		return nil, fmt.Errorf("payload from geth does not form a block: %w", err)
	}
	if a.faultProposeInvalid {
		block = corruptStateRoot(block)
		a.log.Error("TEST FAULT: proposing an execution block with a corrupted state root",
			"height", height, "number", block.NumberU64(), "hash", block.Hash())
	}
	a.log.Info("proposing execution block", "height", height, "number", block.NumberU64(),
		"hash", block.Hash(), "txs", len(block.Transactions()))
	return rlp.EncodeToBytes(block)
}

// blobHashes lists the versioned hashes of the blob transactions of an encoded payload.
func blobHashes(encoded [][]byte) []common.Hash {
	hashes := []common.Hash{}
	txs, err := engine.DecodeTransactions(encoded)
	if err != nil {
		return hashes
	}
	for _, tx := range txs {
		hashes = append(hashes, tx.BlobHashes()...)
	}
	return hashes
}

// decodeBlock reads the one execution block a CometBFT block must carry.
func decodeBlock(txs [][]byte) (*types.Block, error) {
	if len(txs) != 1 {
		return nil, fmt.Errorf("a block must carry exactly one execution payload, got %d", len(txs))
	}
	block := new(types.Block)
	if err := rlp.DecodeBytes(txs[0], block); err != nil {
		return nil, fmt.Errorf("undecodable execution payload: %w", err)
	}
	return block, nil
}

// checkRules verifies what every validator derives alone: parent, number, time, randao,
// fee recipient, no withdrawals, no beacon root.
func checkRules(block *types.Block, parent *types.Header, height int64, blockTime time.Time) error {
	h := block.Header()
	switch {
	case h.ParentHash != parent.Hash():
		return fmt.Errorf("parent %s is not the finalized head %s", h.ParentHash, parent.Hash())
	case h.Number.Uint64() != parent.Number.Uint64()+1:
		return fmt.Errorf("number %d does not follow %d", h.Number, parent.Number)
	case h.Time != expectedTimestamp(parent.Time, blockTime):
		return fmt.Errorf("timestamp %d, want %d", h.Time, expectedTimestamp(parent.Time, blockTime))
	case h.MixDigest != randaoAt(height):
		return fmt.Errorf("prevRandao %s, want %s", h.MixDigest, randaoAt(height))
	case h.Coinbase != feeRecipient:
		return fmt.Errorf("fee recipient %s, want %s", h.Coinbase, feeRecipient)
	case block.Withdrawals() == nil || len(block.Withdrawals()) != 0:
		return errors.New("withdrawals must be an empty list")
	case h.ParentBeaconRoot == nil || *h.ParentBeaconRoot != zeroHash:
		return errors.New("parent beacon block root must be zero")
	}
	return nil
}

// ProcessProposal accepts a proposal only if geth executes its payload as VALID.
func (a *App) ProcessProposal(ctx context.Context, req *abcitypes.RequestProcessProposal) (*abcitypes.ResponseProcessProposal, error) {
	reject := &abcitypes.ResponseProcessProposal{Status: abcitypes.ResponseProcessProposal_REJECT}
	block, err := decodeBlock(req.Txs)
	if err != nil {
		a.log.Error("rejecting proposal", "height", req.Height, "err", err)
		return reject, nil
	}
	a.mu.Lock()
	head := a.state.Head
	a.mu.Unlock()
	parent, err := a.eng.HeaderByHash(ctx, head)
	if err != nil {
		return nil, fmt.Errorf("read head %s: %w", head, err)
	}
	if err := checkRules(block, parent, req.Height, req.Time); err != nil {
		a.log.Error("rejecting proposal", "height", req.Height, "err", err)
		return reject, nil
	}
	if err := a.eng.Import(ctx, block); err != nil {
		a.log.Error("rejecting proposal", "height", req.Height, "err", err)
		return reject, nil
	}
	a.mu.Lock()
	a.valid[block.Hash()] = true
	a.mu.Unlock()
	return &abcitypes.ResponseProcessProposal{Status: abcitypes.ResponseProcessProposal_ACCEPT}, nil
}

// FinalizeBlock imports the decided execution block (if ProcessProposal did not) and makes it
// geth's head, safe and finalized block.
func (a *App) FinalizeBlock(ctx context.Context, req *abcitypes.RequestFinalizeBlock) (*abcitypes.ResponseFinalizeBlock, error) {
	block, err := decodeBlock(req.Txs)
	if err != nil {
		return nil, fmt.Errorf("decided block %d: %w", req.Height, err)
	}
	a.mu.Lock()
	known := a.valid[block.Hash()]
	a.mu.Unlock()
	if !known {
		if err := a.eng.Import(ctx, block); err != nil {
			return nil, fmt.Errorf("decided block %d: %w", req.Height, err)
		}
	}
	if err := a.eng.Finalize(ctx, block.Hash()); err != nil {
		return nil, fmt.Errorf("decided block %d: %w", req.Height, err)
	}
	a.mu.Lock()
	a.pending = &committed{Height: req.Height, Head: block.Hash()}
	a.mu.Unlock()
	a.log.Info("finalized execution block", "height", req.Height, "number", block.NumberU64(),
		"hash", block.Hash(), "txs", len(block.Transactions()))
	return &abcitypes.ResponseFinalizeBlock{
		TxResults: []*abcitypes.ExecTxResult{{Code: codeOK}},
		AppHash:   block.Hash().Bytes(),
	}, nil
}

// Commit persists the finalized head so a restart resumes from it.
func (a *App) Commit(_ context.Context, _ *abcitypes.RequestCommit) (*abcitypes.ResponseCommit, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending == nil {
		return &abcitypes.ResponseCommit{}, nil
	}
	if err := a.save(*a.pending); err != nil {
		return nil, fmt.Errorf("persist the committed head: %w", err)
	}
	a.state, a.pending = *a.pending, nil
	a.valid = map[common.Hash]bool{}
	return &abcitypes.ResponseCommit{}, nil
}
