#!/usr/bin/env bash
# A project-local OCI registry (Debian's docker-registry, distribution 2.8) for development,
# the demo and tests, with notifications to gantry-ingestion.
#
#   scripts/registry.sh start    write the config, start in the background, wait for /v2/; idempotent
#   scripts/registry.sh stop     SIGTERM, then SIGKILL after 10 s
#   scripts/registry.sh status   exit 0 when running, 3 when not
#
# Listens on 127.0.0.1:5000 (plain HTTP), storage .run/registry/data, config
# .run/registry/config.yml (rewritten on every start), log .run/registry.log, pid .run/registry.pid.
# Environment: GANTRY_REGISTRY_PORT (5000), GANTRY_REGISTRY_NOTIFY_URL
# (http://127.0.0.1:8082/v1/events/distribution).
GANTRY_SCRIPT=registry
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REG_PORT="${GANTRY_REGISTRY_PORT:-5000}"
REG_ADDR="127.0.0.1:$REG_PORT"
NOTIFY_URL="${GANTRY_REGISTRY_NOTIFY_URL:-http://127.0.0.1:8082/v1/events/distribution}"
REG_DIR="$RUN_DIR/registry"
CONFIG="$REG_DIR/config.yml"
PIDFILE="$RUN_DIR/registry.pid"
LOGFILE="$RUN_DIR/registry.log"
REG_BIN="${GANTRY_REGISTRY_BIN:-$(command -v docker-registry || echo /usr/bin/docker-registry)}"

write_config() {
    mkdir -p "$REG_DIR/data"
    # http.secret signs upload state; one registry instance, so a fresh one per start is fine.
    local secret
    secret="$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
    (umask 077 && cat >"$CONFIG") <<YAML
# Written by scripts/registry.sh on every start; edit the script, not this file.
version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REG_ADDR
  secret: $secret
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
notifications:
  endpoints:
    - name: gantry-ingestion
      url: $NOTIFY_URL
      timeout: 2s
      threshold: 10
      backoff: 1s
      ignoredmediatypes:
        - application/octet-stream
YAML
}

start() {
    [[ -x "$REG_BIN" ]] || die "docker-registry not found; run scripts/deps.sh"
    if pid_alive "$PIDFILE" docker-registry; then
        log "already running (pid $(cat "$PIDFILE")) on $REG_ADDR"
        return 0
    fi
    if http_ok "http://$REG_ADDR/v2/" || (exec 3<>"/dev/tcp/127.0.0.1/$REG_PORT") 2>/dev/null; then
        die "something else already listens on $REG_ADDR (not our pid file); stop it or set GANTRY_REGISTRY_PORT"
    fi
    write_config
    log "starting on $REG_ADDR (storage $REG_DIR/data)"
    setsid nohup "$REG_BIN" serve "$CONFIG" >>"$LOGFILE" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    local i
    for ((i = 0; i < 300; i++)); do
        if http_ok "http://$REG_ADDR/v2/"; then
            log "ready: http://$REG_ADDR/v2/"
            return 0
        fi
        if ! pid_alive "$PIDFILE"; then break; fi
        sleep 0.1
    done
    tail -n 30 "$LOGFILE" >&2 || true
    stop_pid "$PIDFILE" docker-registry 5
    die "the registry did not answer on http://$REG_ADDR/v2/ (log: $LOGFILE)"
}

stop() {
    if pid_alive "$PIDFILE" docker-registry; then
        stop_pid "$PIDFILE" docker-registry 10
    else
        rm -f "$PIDFILE"
        log "not running"
    fi
}

status() {
    if pid_alive "$PIDFILE" docker-registry; then
        echo "registry: running (pid $(cat "$PIDFILE")) on $REG_ADDR"
    else
        echo "registry: not running"
        return 3
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
