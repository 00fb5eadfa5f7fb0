#!/usr/bin/env bash
# Chain: builds geth v1.13.15 once per machine and prints the path of the binary on stdout.
#
# The binary lands in ${FEDNODE_CACHE:-$HOME/.cache/fednode}/geth-1.13.15/bin/geth, outside the
# repository. A binary already there (or one left by an earlier build in <repo>/.cache/geth/bin)
# is reused when `geth version` reports 1.13.15. Otherwise it is built with `go install` from the
# Go module proxy. Go >= 1.23 refuses geth 1.13's //go:linkname pulls unless the linker gets
# -checklinkname=0, so that flag is added on those toolchains. Progress goes to stderr.
#
# Usage: scripts/build_geth.sh            # prints e.g. /root/.cache/fednode/geth-1.13.15/bin/geth
#        FEDNODE_CACHE=/tmp/c scripts/build_geth.sh
set -euo pipefail

GETH_VERSION="1.13.15"
CACHE_ROOT="${FEDNODE_CACHE:-$HOME/.cache/fednode}"
DEST_DIR="$CACHE_ROOT/geth-$GETH_VERSION/bin"
DEST="$DEST_DIR/geth"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LEGACY="$REPO_ROOT/.cache/geth/bin/geth"

log() { printf 'build_geth: %s\n' "$*" >&2; }

is_wanted_geth() {
    # Capture first: with pipefail, `geth version | grep -q` fails at random when grep exits
    # before geth has written everything (geth then dies of SIGPIPE).
    local report
    [[ -x "$1" ]] && report="$("$1" version 2>/dev/null)" &&
        grep -q "^Version: $GETH_VERSION-" <<<"$report"
}

go_needs_checklinkname() {
    # go1.23 and later enforce //go:linkname restrictions; go1.22 and older lack the flag.
    local minor
    minor="$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')"
    [[ "$minor" =~ ^[0-9]+$ ]] && (( minor >= 23 ))
}

build_into() {
    local gobin="$1" ldflags=()
    command -v go >/dev/null || { log "go is not installed; install Go >= 1.21"; exit 1; }
    if go_needs_checklinkname; then ldflags=(-ldflags=-checklinkname=0); fi
    log "building geth v$GETH_VERSION with $(go env GOVERSION) (a few minutes)"
    GOBIN="$gobin" GOFLAGS="${GOFLAGS:-} -trimpath" \
        go install "${ldflags[@]}" "github.com/ethereum/go-ethereum/cmd/geth@v$GETH_VERSION" >&2
}

main() {
    if is_wanted_geth "$DEST"; then echo "$DEST"; return 0; fi
    mkdir -p "$DEST_DIR"
    # One build at a time per cache folder: a second caller waits and then reuses the result.
    exec 9>"$DEST_DIR/.build.lock"
    flock 9
    if is_wanted_geth "$DEST"; then echo "$DEST"; return 0; fi
    if is_wanted_geth "$LEGACY"; then
        log "reusing $LEGACY"
        install -m 0755 "$LEGACY" "$DEST.tmp" && mv -f "$DEST.tmp" "$DEST"
    else
        BUILD_TMP="$(mktemp -d "$DEST_DIR/.build.XXXXXX")"
        trap 'rm -rf "${BUILD_TMP:-}"' EXIT
        build_into "$BUILD_TMP"
        mv -f "$BUILD_TMP/geth" "$DEST"
    fi
    is_wanted_geth "$DEST" || { log "built binary does not report version $GETH_VERSION"; exit 1; }
    echo "$DEST"
}

main "$@"
