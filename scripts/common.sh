# shellcheck shell=bash disable=SC2034
# Shared helpers for Gantry's operational scripts. Sourced, never run.
#
# Conventions (the Swift code reads these; see the Makefile and README):
#   .run/                 project-local state (git-ignored)
#   .run/pgdata           PostgreSQL data dir, 127.0.0.1:5433, socket dir .run/pgsock
#   .run/registry/        docker-registry config and storage, 127.0.0.1:5000
#   .run/logs/NAME.log    service logs, .run/NAME.pid pids
#   .run/secrets.env      generated GANTRY_SERVICE_KEY / GANTRY_SECRET_KEY (mode 600)

set -euo pipefail

GANTRY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
RUN_DIR="$GANTRY_ROOT/.run"

# The toolchain lives in /opt/swift on the project's machines; make it findable even from a
# shell whose PATH lacks it (CI's environment, sudo, cron).
if ! command -v swift >/dev/null 2>&1 && [[ -x /opt/swift/usr/bin/swift ]]; then
    export PATH="$PATH:/opt/swift/usr/bin"
fi

log() { printf '[%s] %s\n' "${GANTRY_SCRIPT:-gantry}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${GANTRY_SCRIPT:-gantry}" "$*" >&2; exit 1; }

# pid_alive PIDFILE [NAME]: true when the pid file names a live process (whose command line
# contains NAME, when given, so that a recycled pid is not mistaken for ours).
pid_alive() {
    local pidfile="$1" name="${2:-}" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n "$name" && -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
    fi
    return 0
}

# stop_pid PIDFILE NAME [GRACE_SECONDS]: SIGTERM, wait, then SIGKILL; removes the pid file.
stop_pid() {
    local pidfile="$1" name="$2" grace="${3:-10}" pid i
    if ! pid_alive "$pidfile" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) did not stop within ${grace}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$pidfile"
    log "$name stopped"
}

# http_ok URL: true when URL answers with a 2xx status.
http_ok() {
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}
