package main

import (
	"testing"

	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/rlp"
)

// The test fault changes only the state root: every rule a validator checks alone still
// passes, so the rejection the fault tests observe comes from geth's execution.
func TestCorruptStateRootKeepsTheDerivedFieldsAndChangesTheHash(t *testing.T) {
	_, eng := newTestApp(t)
	var honest types.Block
	if err := rlp.DecodeBytes(honestBlock(eng.genesis, nil), &honest); err != nil {
		t.Fatal(err)
	}
	faulty := corruptStateRoot(&honest)
	if faulty.Root() == honest.Root() || faulty.Hash() == honest.Hash() {
		t.Fatalf("state root %s / hash %s unchanged", faulty.Root(), faulty.Hash())
	}
	if err := checkRules(faulty, eng.genesis, 1, blockTime); err != nil {
		t.Fatalf("the corrupted block breaks a derived rule: %v", err)
	}
	if faulty.Withdrawals() == nil || len(faulty.Transactions()) != len(honest.Transactions()) {
		t.Fatalf("the body was not kept")
	}
}
