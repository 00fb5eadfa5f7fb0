#!/usr/bin/env bash
# Runs slither 0.11.6 on contracts/ through the pinned solc-js wrapper (scripts/solc), using a
# solc standard-JSON input built from the same sources and settings as the deployed artifacts.
# Fails on any finding of medium or higher impact that is not justified in the contract with a
# reason comment plus `// slither-disable-next-line <detector>`.
#
# slither-analyzer 0.11.6 declares web3<8 while fednode pins web3==8.0.0, so it is installed
# with --no-deps (its other requirements pinned below); it never uses web3 for local analysis.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(.venv/bin/slither --version 2>/dev/null || true)" != "0.11.6" ]; then
  echo "[slither] installing slither-analyzer 0.11.6 into .venv (--no-deps)" >&2
  .venv/bin/python -m pip install -q --no-deps slither-analyzer==0.11.6 crytic-compile==0.4.2 \
    solc-select==1.2.0 cbor2==6.3.0 prettytable==3.18.0 wcwidth==0.9.4 >&2
fi
mkdir -p .cache/slither
.venv/bin/python - <<'PY'
import json
from fednode.chain.compile import build_standard_input

body = build_standard_input()
selection = {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode"], "": ["ast"]}}
body["settings"] = {**body["settings"], "outputSelection": selection}
with open(".cache/slither/input.json", "w") as out:
    json.dump(body, out)
PY
exec .venv/bin/slither .cache/slither/input.json \
  --compile-force-framework solc-json --solc "$(pwd)/scripts/solc" \
  --filter-paths node_modules --exclude-informational --exclude-low --exclude-optimization \
  --fail-medium "$@"
