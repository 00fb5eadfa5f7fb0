#!/usr/bin/env bash
# Consensus: builds the CometBFT engine's binaries once per machine and prints their paths.
#
# Two binaries, both from the Go module proxy, land outside the repository under
# ${FEDNODE_CACHE:-$HOME/.cache/fednode}:
#   geth-1.17.10/bin/geth                       execution client (Engine API, no Clique)
#   fednode-bft-0.38.26-<src>/bin/fednode-bft   CometBFT v0.38.26 node with the ABCI++ app of
#                                               bft/ in-process (<src>: hash of bft/ sources,
#                                               tests excluded; `cd bft && go test` runs those)
# A binary already there is reused (geth when `geth version` reports 1.17.10, fednode-bft when
# its folder exists: the folder name pins the sources). Builds run under `nice -n 5`, one at a
# time per cache folder. Progress goes to stderr; stdout gets two lines: `geth <path>` and
# `fednode-bft <path>`.
#
# Usage: scripts/build_bft.sh
set -euo pipefail

GETH_VERSION="1.17.10"
COMETBFT_VERSION="0.38.26"
CACHE_ROOT="${FEDNODE_CACHE:-$HOME/.cache/fednode}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO_ROOT/bft"

log() { printf 'build_bft: %s\n' "$*" >&2; }

need_go() { command -v go >/dev/null || { log "go is not installed; install Go >= 1.24"; exit 1; }; }

is_wanted_geth() {
    local report
    [[ -x "$1" ]] && report="$("$1" version 2>/dev/null)" &&
        grep -q "^Version: $GETH_VERSION-" <<<"$report"
}

build_geth() {
    local dir="$CACHE_ROOT/geth-$GETH_VERSION/bin" tmp
    local dest="$dir/geth"
    is_wanted_geth "$dest" && { echo "$dest"; return 0; }
    mkdir -p "$dir"
    exec 8>"$dir/.build.lock"
    flock 8
    if ! is_wanted_geth "$dest"; then
        need_go
        tmp="$(mktemp -d "$dir/.build.XXXXXX")"
        log "building geth v$GETH_VERSION with $(go env GOVERSION) (several minutes)"
        GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -trimpath" nice -n 5 \
            go install "github.com/ethereum/go-ethereum/cmd/geth@v$GETH_VERSION" >&2
        mv -f "$tmp/geth" "$dest"
        rm -rf "$tmp"
    fi
    is_wanted_geth "$dest" || { log "built geth does not report version $GETH_VERSION"; exit 1; }
    echo "$dest"
}

source_hash() {
    # The sources that go into the binary (tests excluded), in glob order.
    local files=(go.mod go.sum) f
    for f in "$SRC"/*.go; do [[ "$f" == *_test.go ]] || files+=("${f##*/}"); done
    (cd "$SRC" && cat "${files[@]}" | sha256sum | cut -c1-12)
}

build_app() {
    local dir="$CACHE_ROOT/fednode-bft-$COMETBFT_VERSION-$(source_hash)/bin"
    local dest="$dir/fednode-bft"
    [[ -x "$dest" ]] && { echo "$dest"; return 0; }
    mkdir -p "$dir"
    exec 7>"$dir/.build.lock"
    flock 7
    if [[ ! -x "$dest" ]]; then
        need_go
        log "building fednode-bft (CometBFT v$COMETBFT_VERSION + ABCI app) with $(go env GOVERSION)"
        (cd "$SRC" && GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly" nice -n 5 \
            go build -o "$dest.tmp" .) >&2
        mv -f "$dest.tmp" "$dest"
    fi
    "$dest" version | grep -q "\"cometbft\":\"$COMETBFT_VERSION\"" ||
        { log "built fednode-bft does not report CometBFT $COMETBFT_VERSION"; exit 1; }
    echo "$dest"
}

main() {
    local geth app
    geth="$(build_geth)"
    app="$(build_app)"
    printf 'geth %s\nfednode-bft %s\n' "$geth" "$app"
}

main "$@"
