package main

import (
	"context"
	"errors"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	abcitypes "github.com/cometbft/cometbft/abci/types"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	"github.com/ethereum/go-ethereum/beacon/engine"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/ethereum/go-ethereum/trie"
)

// fakeEngine is an in-memory geth: it knows headers by hash and records imports and
// finalizations; importErr makes engine_newPayload answer INVALID.
type fakeEngine struct {
	headers   map[common.Hash]*types.Header
	genesis   *types.Header
	head      *types.Header
	imported  []common.Hash
	finalized []common.Hash
	importErr error
}

func newFakeEngine() *fakeEngine {
	genesis := &types.Header{Number: big.NewInt(0), Time: 1000, Difficulty: big.NewInt(0)}
	return &fakeEngine{headers: map[common.Hash]*types.Header{genesis.Hash(): genesis}, genesis: genesis, head: genesis}
}

func (f *fakeEngine) HeaderByHash(_ context.Context, h common.Hash) (*types.Header, error) {
	if hdr, ok := f.headers[h]; ok {
		return hdr, nil
	}
	return nil, errors.New("not found")
}
func (f *fakeEngine) HeaderByNumber(_ context.Context, n uint64) (*types.Header, error) {
	return f.genesis, nil
}
func (f *fakeEngine) HeadHeader(context.Context) (*types.Header, error) { return f.head, nil }
func (f *fakeEngine) StartBuild(context.Context, common.Hash, *engine.PayloadAttributes) (engine.PayloadID, error) {
	return engine.PayloadID{}, errors.New("not used")
}
func (f *fakeEngine) GetPayload(context.Context, engine.PayloadID) (*engine.ExecutableData, error) {
	return nil, errors.New("not used")
}
func (f *fakeEngine) Import(_ context.Context, b *types.Block) error {
	if f.importErr != nil {
		return f.importErr
	}
	f.imported = append(f.imported, b.Hash())
	f.headers[b.Hash()] = b.Header()
	return nil
}
func (f *fakeEngine) Finalize(_ context.Context, h common.Hash) error {
	f.finalized = append(f.finalized, h)
	f.head = f.headers[h]
	return nil
}

var blockTime = time.Unix(2000, 0)

// honestBlock is the block every validator expects on top of parent at height 1.
func honestBlock(parent *types.Header, edit func(*types.Header)) []byte {
	h := &types.Header{
		ParentHash: parent.Hash(), Number: big.NewInt(1), Time: expectedTimestamp(parent.Time, blockTime),
		MixDigest: randaoAt(1), Coinbase: feeRecipient, Difficulty: big.NewInt(0),
		ParentBeaconRoot: &zeroHash, BaseFee: big.NewInt(7), GasLimit: 30_000_000,
	}
	if edit != nil {
		edit(h)
	}
	body := &types.Body{Withdrawals: []*types.Withdrawal{}}
	raw, err := rlp.EncodeToBytes(types.NewBlock(h, body, nil, trie.NewStackTrie(nil)))
	if err != nil {
		panic(err)
	}
	return raw
}

func newTestApp(t *testing.T) (*App, *fakeEngine) {
	t.Helper()
	eng := newFakeEngine()
	app, err := NewApp(eng, filepath.Join(t.TempDir(), "state.json"), 0, cmtlog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.InitChain(context.Background(), &abcitypes.RequestInitChain{}); err != nil {
		t.Fatal(err)
	}
	return app, eng
}

func process(t *testing.T, app *App, txs [][]byte) abcitypes.ResponseProcessProposal_ProposalStatus {
	t.Helper()
	resp, err := app.ProcessProposal(context.Background(),
		&abcitypes.RequestProcessProposal{Txs: txs, Height: 1, Time: blockTime})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Status
}

func TestExpectedTimestampIsBlockTimeButAboveParent(t *testing.T) {
	if got := expectedTimestamp(10, time.Unix(50, 0)); got != 50 {
		t.Fatalf("got %d, want the block time 50", got)
	}
	if got := expectedTimestamp(50, time.Unix(50, 0)); got != 51 {
		t.Fatalf("got %d, want parent+1 = 51", got)
	}
}

func TestProcessProposalAcceptsTheHonestPayload(t *testing.T) {
	app, eng := newTestApp(t)
	if status := process(t, app, [][]byte{honestBlock(eng.genesis, nil)}); status != abcitypes.ResponseProcessProposal_ACCEPT {
		t.Fatalf("honest payload: %v", status)
	}
	if len(eng.imported) != 1 {
		t.Fatalf("geth was not asked to execute the payload")
	}
}

func TestProcessProposalRejectsWhatValidatorsDeriveDifferently(t *testing.T) {
	other := common.HexToHash("0x01")
	cases := map[string]func(*types.Header){
		"parent":        func(h *types.Header) { h.ParentHash = common.HexToHash("0x02") },
		"number":        func(h *types.Header) { h.Number = big.NewInt(2) },
		"timestamp":     func(h *types.Header) { h.Time++ },
		"prevRandao":    func(h *types.Header) { h.MixDigest = other },
		"fee recipient": func(h *types.Header) { h.Coinbase = common.HexToAddress("0x03") },
		"beacon root":   func(h *types.Header) { h.ParentBeaconRoot = &other },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			app, eng := newTestApp(t)
			if status := process(t, app, [][]byte{honestBlock(eng.genesis, edit)}); status != abcitypes.ResponseProcessProposal_REJECT {
				t.Fatalf("forged %s accepted", name)
			}
			if len(eng.imported) != 0 {
				t.Fatalf("forged %s reached geth", name)
			}
		})
	}
}

func TestProcessProposalRejectsMalformedProposals(t *testing.T) {
	app, eng := newTestApp(t)
	good := honestBlock(eng.genesis, nil)
	for name, txs := range map[string][][]byte{
		"no payload": {}, "two payloads": {good, good}, "garbage": {[]byte("not rlp")},
	} {
		if status := process(t, app, txs); status != abcitypes.ResponseProcessProposal_REJECT {
			t.Fatalf("%s accepted", name)
		}
	}
}

func TestProcessProposalRejectsWhatGethFindsInvalid(t *testing.T) {
	app, eng := newTestApp(t)
	eng.importErr = errors.New("engine_newPayloadV3: status INVALID bad state root")
	if status := process(t, app, [][]byte{honestBlock(eng.genesis, nil)}); status != abcitypes.ResponseProcessProposal_REJECT {
		t.Fatalf("payload geth refused was accepted")
	}
}

func TestFinalizeAndCommitMoveTheFinalizedHeadAndSurviveARestart(t *testing.T) {
	app, eng := newTestApp(t)
	payload := honestBlock(eng.genesis, nil)
	ctx := context.Background()
	resp, err := app.FinalizeBlock(ctx, &abcitypes.RequestFinalizeBlock{Txs: [][]byte{payload}, Height: 1, Time: blockTime})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Commit(ctx, &abcitypes.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	var block types.Block
	if err := rlp.DecodeBytes(payload, &block); err != nil {
		t.Fatal(err)
	}
	if common.BytesToHash(resp.AppHash) != block.Hash() || eng.finalized[0] != block.Hash() {
		t.Fatalf("app hash %x / finalized %v, want %s", resp.AppHash, eng.finalized, block.Hash())
	}
	restarted, err := NewApp(eng, app.statePath, 0, cmtlog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	info, _ := restarted.Info(ctx, &abcitypes.RequestInfo{})
	if info.LastBlockHeight != 1 || common.BytesToHash(info.LastBlockAppHash) != block.Hash() {
		t.Fatalf("restart reports height %d hash %x", info.LastBlockHeight, info.LastBlockAppHash)
	}
}

func TestInfoFallsBackToGethsHeadWhenGethLostBlocks(t *testing.T) {
	app, eng := newTestApp(t)
	ctx := context.Background()
	if _, err := app.FinalizeBlock(ctx, &abcitypes.RequestFinalizeBlock{Txs: [][]byte{honestBlock(eng.genesis, nil)}, Height: 1, Time: blockTime}); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Commit(ctx, &abcitypes.RequestCommit{}); err != nil {
		t.Fatal(err)
	}
	eng.head = eng.genesis // geth was SIGKILLed and came back without block 1
	restarted, err := NewApp(eng, app.statePath, 0, cmtlog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	info, err := restarted.Info(ctx, &abcitypes.RequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if info.LastBlockHeight != 0 {
		t.Fatalf("reported height %d, want geth's 0 so that CometBFT replays block 1", info.LastBlockHeight)
	}
}
