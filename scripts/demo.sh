#!/usr/bin/env bash
# Runs `gantry demo` against the locally running stack (make run starts it first).
# Extra arguments are passed to `gantry demo`.
GANTRY_SCRIPT=demo
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/env.sh
source "$GANTRY_ROOT/scripts/env.sh"

export_gantry_env
corpus="${GANTRY_CORPUS:-$GANTRY_ROOT/../shared/corpus}"
[[ -d "$corpus" ]] || die "the test corpus is missing at $corpus; set GANTRY_CORPUS"
corpus="$(cd "$corpus" && pwd -P)"
bin="$(gantry_bin_path)"
[[ -x "$bin/gantry" ]] || die "$bin/gantry is missing: run make build"
exec "$bin/gantry" demo --corpus "$corpus" --registry "127.0.0.1:${GANTRY_REGISTRY_PORT:-5000}" "$@"
