// Consensus: the Engine API client of one geth (JWT-authenticated JSON-RPC on loopback).
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/beacon/engine"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/node"
	"github.com/ethereum/go-ethereum/rpc"
)

// Engine is what the application needs from geth.
type Engine interface {
	HeaderByHash(ctx context.Context, hash common.Hash) (*types.Header, error)
	HeaderByNumber(ctx context.Context, number uint64) (*types.Header, error)
	HeadHeader(ctx context.Context) (*types.Header, error)
	StartBuild(ctx context.Context, head common.Hash, attrs *engine.PayloadAttributes) (engine.PayloadID, error)
	GetPayload(ctx context.Context, id engine.PayloadID) (*engine.ExecutableData, error)
	Import(ctx context.Context, block *types.Block) error
	Finalize(ctx context.Context, hash common.Hash) error
}

// GethEngine talks to geth's authenticated RPC endpoint (engine_ and eth_ namespaces).
type GethEngine struct {
	rpc *rpc.Client
	eth *ethclient.Client
}

// ReadJWTSecret reads a 32-byte hex secret in geth's --authrpc.jwtsecret format.
func ReadJWTSecret(path string) ([32]byte, error) {
	var secret [32]byte
	raw, err := os.ReadFile(path)
	if err != nil {
		return secret, err
	}
	text := strings.TrimPrefix(strings.TrimSpace(string(raw)), "0x")
	decoded, err := hex.DecodeString(text)
	if err != nil || len(decoded) != 32 {
		return secret, fmt.Errorf("%s must hold 32 hex-encoded bytes", path)
	}
	copy(secret[:], decoded)
	return secret, nil
}

// DialEngine connects to geth's Engine API and waits until it answers (geth may still start).
func DialEngine(ctx context.Context, url string, secret [32]byte, wait time.Duration) (*GethEngine, error) {
	client, err := rpc.DialOptions(ctx, url, rpc.WithHTTPAuth(node.NewJWTAuth(secret)))
	if err != nil {
		return nil, err
	}
	eng := &GethEngine{rpc: client, eth: ethclient.NewClient(client)}
	deadline := time.Now().Add(wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		_, err = eng.HeaderByNumber(cctx, 0)
		cancel()
		if err == nil {
			return eng, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("geth Engine API at %s does not answer: %w", url, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (g *GethEngine) HeaderByHash(ctx context.Context, hash common.Hash) (*types.Header, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return g.eth.HeaderByHash(cctx, hash)
}

func (g *GethEngine) HeaderByNumber(ctx context.Context, number uint64) (*types.Header, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return g.eth.HeaderByNumber(cctx, new(big.Int).SetUint64(number))
}

// HeadHeader is geth's current head (after a restart: the newest block it still has).
func (g *GethEngine) HeadHeader(ctx context.Context) (*types.Header, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	return g.eth.HeaderByNumber(cctx, nil)
}

func (g *GethEngine) forkchoice(ctx context.Context, head common.Hash, attrs *engine.PayloadAttributes) (engine.ForkChoiceResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	state := engine.ForkchoiceStateV1{HeadBlockHash: head, SafeBlockHash: head, FinalizedBlockHash: head}
	var resp engine.ForkChoiceResponse
	if err := g.rpc.CallContext(cctx, &resp, "engine_forkchoiceUpdatedV3", state, attrs); err != nil {
		return resp, fmt.Errorf("engine_forkchoiceUpdatedV3(%s): %w", head, err)
	}
	if resp.PayloadStatus.Status != engine.VALID {
		return resp, fmt.Errorf("engine_forkchoiceUpdatedV3(%s): status %s %s", head,
			resp.PayloadStatus.Status, errText(resp.PayloadStatus.ValidationError))
	}
	return resp, nil
}

func errText(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// StartBuild moves the fork choice onto head (already final) and starts a payload on it.
func (g *GethEngine) StartBuild(ctx context.Context, head common.Hash, attrs *engine.PayloadAttributes) (engine.PayloadID, error) {
	resp, err := g.forkchoice(ctx, head, attrs)
	if err != nil {
		return engine.PayloadID{}, err
	}
	if resp.PayloadID == nil {
		return engine.PayloadID{}, errors.New("engine_forkchoiceUpdatedV3 returned no payload id")
	}
	return *resp.PayloadID, nil
}

func (g *GethEngine) GetPayload(ctx context.Context, id engine.PayloadID) (*engine.ExecutableData, error) {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	var env engine.ExecutionPayloadEnvelope
	if err := g.rpc.CallContext(cctx, &env, "engine_getPayloadV3", id); err != nil {
		return nil, fmt.Errorf("engine_getPayloadV3(%s): %w", id, err)
	}
	if env.ExecutionPayload == nil {
		return nil, errors.New("engine_getPayloadV3 returned no payload")
	}
	return env.ExecutionPayload, nil
}

// Import has geth execute a block (engine_newPayloadV3); only VALID counts.
func (g *GethEngine) Import(ctx context.Context, block *types.Block) error {
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	data := engine.BlockToExecutableData(block, nil, nil, nil).ExecutionPayload
	hashes := []common.Hash{}
	for _, tx := range block.Transactions() {
		hashes = append(hashes, tx.BlobHashes()...)
	}
	beaconRoot := block.BeaconRoot()
	if beaconRoot == nil {
		return errors.New("block has no parent beacon block root")
	}
	var status engine.PayloadStatusV1
	if err := g.rpc.CallContext(cctx, &status, "engine_newPayloadV3", data, hashes, beaconRoot); err != nil {
		return fmt.Errorf("engine_newPayloadV3(%s): %w", block.Hash(), err)
	}
	if status.Status != engine.VALID {
		return fmt.Errorf("engine_newPayloadV3(%s): status %s %s", block.Hash(), status.Status,
			errText(status.ValidationError))
	}
	return nil
}

// Finalize makes hash geth's head, safe and finalized block.
func (g *GethEngine) Finalize(ctx context.Context, hash common.Hash) error {
	_, err := g.forkchoice(ctx, hash, nil)
	return err
}
