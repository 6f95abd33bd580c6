#!/usr/bin/env bash
# A project-local PostgreSQL cluster for development and tests.
#
#   scripts/postgres.sh start    init (once), start, create role/database if missing; idempotent
#   scripts/postgres.sh stop     fast shutdown; harmless when not running
#   scripts/postgres.sh status   exit 0 when running, 3 when not
#   scripts/postgres.sh url      print the application's connection URL
#   scripts/postgres.sh destroy  stop and delete the cluster (used by `make clean-state`)
#
# Data dir .run/pgdata, 127.0.0.1:5433, socket dir .run/pgsock, log .run/postgres.log.
# Login role `gantry` (CREATEDB, since tests create and drop databases; NOSUPERUSER NOBYPASSRLS, so that
# row-level security applies to the services) owning database `gantry`.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user. When that
# user cannot reach .run/ (a clone under /root, say) or the socket path would be too long, the
# cluster lives in /var/lib/gantry-pg/<hash of the repo path>/ and .run/ holds symlinks to it.
#
# Environment: GANTRY_PG_PORT (5433), GANTRY_PG_PASSWORD (gantry: a development-only default),
# GANTRY_PG_BIN (the newest /usr/lib/postgresql/*/bin, preferring 15).
GANTRY_SCRIPT=postgres
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PG_PORT="${GANTRY_PG_PORT:-5433}"
PG_HOST=127.0.0.1
PG_ROLE=gantry
PG_DB=gantry
PG_PASSWORD="${GANTRY_PG_PASSWORD:-gantry}"

find_pg_bin() {
    if [[ -n "${GANTRY_PG_BIN:-}" ]]; then echo "$GANTRY_PG_BIN"; return; fi
    if [[ -x /usr/lib/postgresql/15/bin/postgres ]]; then echo /usr/lib/postgresql/15/bin; return; fi
    local dir
    dir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
    [[ -n "$dir" && -x "$dir/postgres" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql; run scripts/deps.sh"
    echo "$dir"
}
PG_BIN="$(find_pg_bin)"

if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user; run scripts/deps.sh (installs postgresql)"
    PG_USER=postgres
else
    PG_USER="$(id -un)"
fi

# as_pg CMD...: run CMD as the server's owner, from / (it may not be able to enter the cwd).
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Decide where the cluster lives: .run/ itself when the server's user can reach it, else an
# external directory linked from .run/. Sets PG_HOME (real dir holding pgdata, pgsock, log).
resolve_home() {
    mkdir -p "$RUN_DIR"
    local link="$RUN_DIR/pgdata"
    if [[ -L "$link" ]]; then
        PG_HOME="$(dirname "$(readlink -f "$link")")"
        return
    fi
    local sock_path="$RUN_DIR/pgsock/.s.PGSQL.$PG_PORT"
    # .run/ is ours (root's or the developer's): let the server's user traverse it, then check
    # that every ancestor lets it through too. Unix socket paths are limited to ~107 bytes.
    chmod 755 "$RUN_DIR" 2>/dev/null || true
    if [[ -d "$link" ]] || { as_pg test -x "$RUN_DIR" 2>/dev/null && ((${#sock_path} < 100)); }; then
        PG_HOME="$RUN_DIR"
        return
    fi
    local hash
    hash="$(printf '%s' "$GANTRY_ROOT" | sha256sum | cut -c1-12)"
    PG_HOME="/var/lib/gantry-pg/$hash"
    mkdir -p "$PG_HOME"
    chmod 755 /var/lib/gantry-pg
    [[ $EUID -eq 0 ]] && chown "$PG_USER:" "$PG_HOME"
    printf '%s\n' "$GANTRY_ROOT" >"$PG_HOME/REPOSITORY"
    ln -sfn "$PG_HOME/pgdata" "$RUN_DIR/pgdata"
    ln -sfn "$PG_HOME/pgsock" "$RUN_DIR/pgsock"
    ln -sfn "$PG_HOME/postgres.log" "$RUN_DIR/postgres.log"
    log "the postgres user cannot use $RUN_DIR; cluster lives in $PG_HOME (linked from .run/)"
}

PG_HOME=""
DATA=""
SOCK=""
LOGFILE=""
setup_paths() {
    resolve_home
    DATA="$PG_HOME/pgdata"
    SOCK="$PG_HOME/pgsock"
    LOGFILE="$PG_HOME/postgres.log"
}

pg_running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_pg "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

init_cluster() {
    mkdir -p "$DATA" "$SOCK"
    touch "$LOGFILE"
    if [[ $EUID -eq 0 ]]; then chown "$PG_USER:" "$DATA" "$SOCK" "$LOGFILE"; fi
    chmod 700 "$DATA"
    chmod 755 "$SOCK"
    if [[ -f "$DATA/PG_VERSION" ]]; then return; fi
    log "initialising cluster in $DATA"
    as_pg "$PG_BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_HOME/initdb.log" 2>&1 ||
        { tail -n 20 "$PG_HOME/initdb.log" >&2; die "initdb failed (see $PG_HOME/initdb.log)"; }
    # A development and test cluster: durability is traded for speed (tests create and drop
    # many databases). Never use these settings for data you want to keep.
    as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<CONF

# --- gantry development cluster (scripts/postgres.sh) ---
listen_addresses = '$PG_HOST'
port = $PG_PORT
max_connections = 1000
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 2000
CONF
}

ensure_role_and_db() {
    local psql=("$PG_BIN/psql" -X -q -h "$SOCK" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1)
    as_pg "${psql[@]}" -d postgres -v role="$PG_ROLE" -v pw="$PG_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
-- Never a superuser nor BYPASSRLS: either would exempt the services from row-level security.
ALTER ROLE :"role" WITH LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS PASSWORD :'pw';
SQL
    as_pg "${psql[@]}" -d postgres -v role="$PG_ROLE" -v db="$PG_DB" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I ENCODING ''UTF8''', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
}

start() {
    setup_paths
    init_cluster
    if pg_running; then
        log "already running ($DATA)"
    else
        log "starting on $PG_HOST:$PG_PORT"
        # Port, address and socket dir are given on every start so that a moved checkout works.
        if ! as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t 60 \
            -o "-p $PG_PORT -h $PG_HOST -k $SOCK -c max_connections=1000" >/dev/null; then
            tail -n 30 "$LOGFILE" >&2 || true
            die "PostgreSQL did not start (log: $RUN_DIR/postgres.log)"
        fi
    fi
    ensure_role_and_db
    log "ready: $(url)"
}

stop() {
    setup_paths
    if pg_running; then
        as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null
        log "stopped"
    else
        log "not running"
    fi
}

status() {
    setup_paths
    if pg_running; then
        echo "postgres: running on $PG_HOST:$PG_PORT ($DATA)"
    else
        echo "postgres: not running"
        return 3
    fi
}

# Stops the server and deletes the cluster, including an external home outside .run/.
destroy() {
    stop
    if [[ "$PG_HOME" != "$RUN_DIR" ]]; then
        rm -rf "$PG_HOME"
        rmdir /var/lib/gantry-pg 2>/dev/null || true
    fi
    rm -rf "$RUN_DIR/pgdata" "$RUN_DIR/pgsock" "$RUN_DIR/postgres.log" "$RUN_DIR/initdb.log"
    log "cluster deleted"
}

url() {
    printf 'postgres://%s:%s@%s:%s/%s\n' "$PG_ROLE" "$PG_PASSWORD" "$PG_HOST" "$PG_PORT" "$PG_DB"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) url ;;
    destroy) destroy ;;
    *) echo "usage: $0 start|stop|status|url|destroy" >&2; exit 2 ;;
esac
