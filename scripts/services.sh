#!/usr/bin/env bash
# Runs the six Gantry services locally in the background.
#
#   scripts/services.sh start    swift build, generate secrets if missing, start what is not
#                                running, wait (120 s at most) for every /readyz; idempotent
#   scripts/services.sh stop     SIGTERM all, SIGKILL what is left after 10 s
#   scripts/services.sh status   pid and readiness of each; exit 3 unless all are ready
#
# Logs .run/logs/NAME.log, pids .run/NAME.pid. Needs PostgreSQL (scripts/postgres.sh start).
# GANTRY_SKIP_BUILD=1 skips `swift build` (the Makefile builds first);
# GANTRY_READY_TIMEOUT changes the 120 s wait.
GANTRY_SCRIPT=services
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/env.sh
source "$GANTRY_ROOT/scripts/env.sh"

READY_TIMEOUT="${GANTRY_READY_TIMEOUT:-120}"
LOG_DIR="$RUN_DIR/logs"

start() {
    if [[ "${GANTRY_SKIP_BUILD:-0}" != 1 ]]; then
        log "swift build"
        (cd "$GANTRY_ROOT" && swift build) || die "swift build failed"
    fi
    local bin
    bin="$(gantry_bin_path)" || die "swift build --show-bin-path failed"
    export_gantry_env
    mkdir -p "$LOG_DIR"

    local entry name port started=()
    for entry in "${GANTRY_SERVICES[@]}"; do
        name="${entry%%:*}" port="${entry##*:}"
        if pid_alive "$RUN_DIR/$name.pid" "$name"; then
            log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"
            continue
        fi
        [[ -x "$bin/$name" ]] || die "$bin/$name is missing: did swift build build all products?"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            die "port $port is already taken by another process; cannot start $name"
        fi
        printf '\n==== %s starting %s on :%s ====\n' "$(date -u +%FT%TZ)" "$name" "$port" >>"$LOG_DIR/$name.log"
        GANTRY_PORT="$port" setsid nohup "$bin/$name" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
        echo $! >"$RUN_DIR/$name.pid"
        started+=("$name")
        log "started $name (pid $!) on :$port"
    done
    wait_ready
}

# Polls every /readyz until all answer 200, one dies, or READY_TIMEOUT passes.
wait_ready() {
    local deadline=$((SECONDS + READY_TIMEOUT)) entry name port
    declare -A ready=() dead=()
    while :; do
        for entry in "${GANTRY_SERVICES[@]}"; do
            name="${entry%%:*}" port="${entry##*:}"
            [[ -n "${ready[$name]:-}${dead[$name]:-}" ]] && continue
            if http_ok "http://127.0.0.1:$port/readyz"; then
                ready[$name]=1
                log "$name ready on :$port"
            elif ! pid_alive "$RUN_DIR/$name.pid" "$name"; then
                dead[$name]=1
            fi
        done
        ((${#ready[@]} + ${#dead[@]} == ${#GANTRY_SERVICES[@]})) && break
        ((SECONDS >= deadline)) && break
        sleep 0.5
    done
    ((${#ready[@]} == ${#GANTRY_SERVICES[@]})) && { log "all ${#ready[@]} services ready"; return 0; }

    for entry in "${GANTRY_SERVICES[@]}"; do
        name="${entry%%:*}" port="${entry##*:}"
        [[ -n "${ready[$name]:-}" ]] && continue
        if [[ -n "${dead[$name]:-}" ]]; then
            printf '\n[services] FAILED: %s exited (log %s); last lines:\n' "$name" "$LOG_DIR/$name.log" >&2
        else
            printf '\n[services] FAILED: %s not ready on http://127.0.0.1:%s/readyz after %ss (log %s); last lines:\n' \
                "$name" "$port" "$READY_TIMEOUT" "$LOG_DIR/$name.log" >&2
        fi
        tail -n 25 "$LOG_DIR/$name.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    done
    die "$((${#GANTRY_SERVICES[@]} - ${#ready[@]})) of ${#GANTRY_SERVICES[@]} services not ready (scripts/services.sh stop to clean up)"
}

stop() {
    local entry name pid pids=() names=() i
    for entry in "${GANTRY_SERVICES[@]}"; do
        name="${entry%%:*}"
        if pid_alive "$RUN_DIR/$name.pid" "$name"; then
            pid="$(cat "$RUN_DIR/$name.pid")"
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid") names+=("$name")
        else
            rm -f "$RUN_DIR/$name.pid"
        fi
    done
    ((${#pids[@]} == 0)) && { log "no services running"; return 0; }
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive == 0)) && break
        sleep 0.1
    done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
        rm -f "$RUN_DIR/${names[$i]}.pid"
    done
    log "stopped: ${names[*]}"
}

status() {
    local entry name port rc=0 state
    for entry in "${GANTRY_SERVICES[@]}"; do
        name="${entry%%:*}" port="${entry##*:}"
        if pid_alive "$RUN_DIR/$name.pid" "$name"; then
            if http_ok "http://127.0.0.1:$port/readyz"; then state="ready"; else state="running, not ready"; rc=3; fi
            printf '%-24s pid %-7s :%s %s\n' "$name" "$(cat "$RUN_DIR/$name.pid")" "$port" "$state"
        else
            printf '%-24s %-11s :%s stopped\n' "$name" "" "$port"
            rc=3
        fi
    done
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
