// Consensus: test-only faults of the ABCI++ application (never set them on a real validator).
//
// `fednode-bft run --fault-propose-invalid` makes this validator, whenever it is the proposer,
// propose an execution block whose state root no execution reaches. Every rule a validator
// derives alone still holds (parent, number, time, prevRandao, fee recipient), so only geth's
// execution (engine_newPayloadV3 answering INVALID) can catch it: the fault integration tests
// use it to show that honest validators reject such a proposal and the chain goes on with the
// next proposer.
package main

import (
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// corruptStateRoot returns block with its state root replaced by a hash no execution of its
// transactions produces; the body (transactions, empty withdrawals) is kept.
func corruptStateRoot(block *types.Block) *types.Block {
	header := block.Header()
	header.Root = crypto.Keccak256Hash([]byte("fednode-bft/fault/state-root"), header.Root.Bytes())
	return block.WithSeal(header)
}
