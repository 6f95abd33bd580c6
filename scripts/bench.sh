#!/usr/bin/env bash
# TODO: the benchmark suite (make bench). Not written yet.
echo "[bench] not yet: scripts/bench.sh is a stub" >&2
exit 0
