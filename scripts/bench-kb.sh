#!/usr/bin/env bash
# make bench, knowledge-base part (issue 4, "Benchmarks"): on the corpus feeds,
# 1. gantry-kb-bench (release, in-process): parse time of the complete Go vulndb, PyPA and RustSec OSV
#    archives; matching one 1,000-package inventory (median; target <= 50 ms); re-matching 10,000 stored
#    inventories against a feed difference (target <= 10 s);
# 2. the scanner service (release) on a fresh database: wall time of `gantry feeds import` of a signed bundle
#    of those three archives (verification, parse, insert, change lists) and the knowledge base's size on disk.
# Needs the PostgreSQL cluster of scripts/postgres.sh (started if needed).
GANTRY_SCRIPT=bench-kb
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

corpus="${GANTRY_CORPUS:-$GANTRY_ROOT/../shared/corpus}"
feeds="$corpus/3-vuln-feeds"
[[ -d "$feeds" ]] || die "the test corpus is missing at $corpus; set GANTRY_CORPUS"
cd "$GANTRY_ROOT"
log "building gantry-kb-bench, gantry and gantry-scanner (release)"
swift build -c release --product gantry-kb-bench >/dev/null
swift build -c release --product gantry >/dev/null
swift build -c release --product gantry-scanner >/dev/null
bin="$(swift build -c release --show-bin-path)"
"$bin/gantry-kb-bench" "$feeds"

scripts/postgres.sh start >/dev/null
work="$(mktemp -d)"
trap 'kill "${scanner_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/feeds"
for archive in golang-vulndb-data-osv.tar.gz pypa-advisory-database-vulns.tar.gz rustsec-advisory-db-osv-branch.tar.gz; do
    ln -s "$feeds/osv/full-archives/$archive" "$work/feeds/$archive"
done
public_key="$("$bin/gantry" feeds keygen --out "$work/signing.key" 2>/dev/null)"
"$bin/gantry" feeds bundle --from-dir "$work/feeds" --out "$work/bundle.tar.gz" --signing-key "$work/signing.key" >/dev/null

database="gantry_bench_kb_$$"
admin_url="postgres://gantry:gantry@127.0.0.1:5433/postgres"
psql "$admin_url" -qc "CREATE DATABASE $database" >/dev/null
port=18183
export GANTRY_DATABASE_URL="postgres://gantry:gantry@127.0.0.1:5433/$database" GANTRY_PORT=$port GANTRY_PROFILE=development \
    GANTRY_SERVICE_KEY="$(head -c 32 /dev/urandom | base64)" GANTRY_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" \
    GANTRY_FEEDS_PUBLIC_KEY="$public_key" GANTRY_FEEDS_UPDATE_SECONDS=0 GANTRY_SCANNER_URL="http://127.0.0.1:$port" \
    GANTRY_LOG_LEVEL=warning GANTRY_MAX_BODY_BYTES=1073741824
"$bin/gantry-scanner" >"$work/scanner.log" 2>&1 &
scanner_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
start=$(date +%s.%N)
"$bin/gantry" feeds import "$work/bundle.tar.gz" >/dev/null || { cat "$work/scanner.log" >&2; die "import failed"; }
end=$(date +%s.%N)
start_again=$(date +%s.%N)
"$bin/gantry" feeds import "$work/bundle.tar.gz" >/dev/null
end_again=$(date +%s.%N)
size=$(psql "$GANTRY_DATABASE_URL" -Atc "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'scanner' AND c.relname LIKE 'kb\_%' AND c.relkind = 'r'")
rows=$(psql "$GANTRY_DATABASE_URL" -Atc "SELECT (SELECT count(*) FROM scanner.kb_vulnerabilities) || ' records, ' ||
    (SELECT count(*) FROM scanner.kb_affected) || ' affected rows'")
awk -v a="$start" -v b="$end" -v c="$start_again" -v d="$end_again" -v size="$size" -v rows="$rows" 'BEGIN {
    printf "import Go vulndb + PyPA + RustSec bundle into PostgreSQL: %.1f s (%s); re-import unchanged: %.1f s; knowledge base on disk: %s\n",
        b - a, rows, d - c, size }'
kill "$scanner_pid" 2>/dev/null; wait "$scanner_pid" 2>/dev/null || true
psql "$admin_url" -qc "DROP DATABASE $database" >/dev/null
