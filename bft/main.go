// Consensus: fednode-bft, one validator's CometBFT node with the ABCI++ application in-process.
//
//	fednode-bft init --home DIR          create the validator and node keys, print them as JSON
//	fednode-bft run --home DIR ...       run CometBFT driving geth through its Engine API
//	fednode-bft version                  print the versions built in, as JSON
//
// CometBFT reads genesis.json from DIR/config; every other setting comes from the flags.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cfg "github.com/cometbft/cometbft/config"
	cmtflags "github.com/cometbft/cometbft/libs/cli/flags"
	cmtlog "github.com/cometbft/cometbft/libs/log"
	nm "github.com/cometbft/cometbft/node"
	"github.com/cometbft/cometbft/p2p"
	"github.com/cometbft/cometbft/privval"
	"github.com/cometbft/cometbft/proxy"
	cmtversion "github.com/cometbft/cometbft/version"
	gethversion "github.com/ethereum/go-ethereum/version"
)

const appVersion = "0.1.0"

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fednode-bft: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: fednode-bft init|run|version [flags]")
	}
	switch os.Args[1] {
	case "init":
		runInit(os.Args[2:])
	case "run":
		runNode(os.Args[2:])
	case "version":
		out, _ := json.Marshal(map[string]string{"fednode_bft": appVersion,
			"cometbft": cmtversion.TMCoreSemVer, "go_ethereum": fmt.Sprintf("%d.%d.%d-%s", gethversion.Major, gethversion.Minor, gethversion.Patch, gethversion.Meta)})
		fmt.Println(string(out))
	default:
		fail("unknown command %q (want init, run or version)", os.Args[1])
	}
}

// runInit creates (or loads) the keys under DIR and prints the public parts.
func runInit(args []string) {
	fs := flag.NewFlagSet("init", flag.ExitOnError)
	home := fs.String("home", "", "CometBFT home folder")
	_ = fs.Parse(args)
	if *home == "" {
		fail("init needs --home")
	}
	config := cfg.DefaultConfig()
	config.SetRoot(*home)
	for _, dir := range []string{filepath.Join(*home, "config"), filepath.Join(*home, "data")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fail("%v", err)
		}
	}
	pv := privval.LoadOrGenFilePV(config.PrivValidatorKeyFile(), config.PrivValidatorStateFile())
	nodeKey, err := p2p.LoadOrGenNodeKey(config.NodeKeyFile())
	if err != nil {
		fail("node key: %v", err)
	}
	pub, err := pv.GetPubKey()
	if err != nil {
		fail("validator key: %v", err)
	}
	out, _ := json.Marshal(map[string]string{
		"node_id":        string(nodeKey.ID()),
		"validator_type": pub.Type(),
		"validator_key":  base64.StdEncoding.EncodeToString(pub.Bytes()),
		"address":        pub.Address().String(),
	})
	fmt.Println(string(out))
}

type runFlags struct {
	home, moniker, engineURL, jwtPath, p2p, rpc, peers, logLevel string
	timeoutCommit, buildWait, engineWait                         time.Duration
	faultProposeInvalid                                          bool
}

func parseRun(args []string) runFlags {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&f.home, "home", "", "CometBFT home folder (config/genesis.json, keys, data)")
	fs.StringVar(&f.moniker, "moniker", "validator", "node name")
	fs.StringVar(&f.engineURL, "engine", "http://127.0.0.1:8551", "geth Engine API URL")
	fs.StringVar(&f.jwtPath, "jwt-secret", "", "file with geth's --authrpc.jwtsecret")
	fs.StringVar(&f.p2p, "p2p", "tcp://127.0.0.1:26656", "CometBFT p2p listen address")
	fs.StringVar(&f.rpc, "rpc", "tcp://127.0.0.1:26657", "CometBFT RPC listen address")
	fs.StringVar(&f.peers, "peers", "", "persistent peers, id@host:port,...")
	fs.StringVar(&f.logLevel, "log-level", "info", "CometBFT log level (e.g. info, *:error)")
	fs.DurationVar(&f.timeoutCommit, "timeout-commit", time.Second, "pause after each commit")
	fs.DurationVar(&f.buildWait, "build-wait", 250*time.Millisecond,
		"time geth gets to fill a payload with transactions")
	fs.DurationVar(&f.engineWait, "engine-wait", 60*time.Second, "how long to wait for geth")
	fs.BoolVar(&f.faultProposeInvalid, "fault-propose-invalid", false,
		"TEST ONLY: propose execution blocks with a corrupted state root (fault tests)")
	_ = fs.Parse(args)
	if f.home == "" || f.jwtPath == "" {
		fail("run needs --home and --jwt-secret")
	}
	return f
}

func cometConfig(f runFlags) *cfg.Config {
	config := cfg.DefaultConfig()
	config.SetRoot(f.home)
	config.Moniker = f.moniker
	config.LogLevel = f.logLevel
	config.P2P.ListenAddress = f.p2p
	config.P2P.PersistentPeers = f.peers
	config.P2P.AddrBookStrict = false  // peers are on loopback or private addresses
	config.P2P.AllowDuplicateIP = true // several validators may share one host
	config.P2P.PexReactor = false      // the peer list is the consortium's, not discovered
	config.RPC.ListenAddress = f.rpc
	config.Consensus.TimeoutCommit = f.timeoutCommit
	config.Consensus.CreateEmptyBlocks = true
	config.TxIndex.Indexer = "null"
	config.Instrumentation.Prometheus = false
	return config
}

func runNode(args []string) {
	f := parseRun(args)
	config := cometConfig(f)
	if err := config.ValidateBasic(); err != nil {
		fail("config: %v", err)
	}
	logger := cmtlog.NewTMLogger(cmtlog.NewSyncWriter(os.Stdout))
	logger, err := cmtflags.ParseLogLevel(config.LogLevel, logger, cfg.DefaultLogLevel)
	if err != nil {
		fail("log level: %v", err)
	}
	secret, err := ReadJWTSecret(f.jwtPath)
	if err != nil {
		fail("jwt secret: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	eng, err := DialEngine(ctx, f.engineURL, secret, f.engineWait)
	if err != nil {
		fail("%v", err)
	}
	app, err := NewApp(eng, filepath.Join(f.home, "data", "fednode_app.json"), f.buildWait,
		logger.With("module", "fednode-app"))
	if err != nil {
		fail("%v", err)
	}
	app.faultProposeInvalid = f.faultProposeInvalid
	if f.faultProposeInvalid {
		logger.Error("TEST FAULT --fault-propose-invalid: this validator proposes invalid blocks")
	}
	nodeKey, err := p2p.LoadNodeKey(config.NodeKeyFile())
	if err != nil {
		fail("node key (run init first): %v", err)
	}
	pv := privval.LoadFilePV(config.PrivValidatorKeyFile(), config.PrivValidatorStateFile())
	node, err := nm.NewNode(config, pv, nodeKey, proxy.NewLocalClientCreator(app),
		nm.DefaultGenesisDocProviderFunc(config), cfg.DefaultDBProvider,
		nm.DefaultMetricsProvider(config.Instrumentation), logger)
	if err != nil {
		fail("create node: %v", err)
	}
	if err := node.Start(); err != nil {
		fail("start node: %v", err)
	}
	logger.Info("fednode-bft started", "peers", strings.Count(f.peers, "@"), "engine", f.engineURL)
	<-ctx.Done()
	logger.Info("stopping")
	if err := node.Stop(); err != nil {
		logger.Error("stop", "err", err)
	}
	node.Wait()
}
