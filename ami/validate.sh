#!/usr/bin/env bash
# Validates the Packer template offline. Debian's packer (1.6.6) rejects the
# required_plugins block, so plugins.pkr.hcl is left out of the copy, and the
# build outputs the template uploads are stubbed.
set -euo pipefail
cd "$(dirname "$0")"
packer validate -syntax-only nimbus.pkr.hcl
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp nimbus.pkr.hcl install.sh nimbus-web.service nimbus-scaler.service nimbus-worker.service "$tmp"/
mkdir -p "$tmp/build/assets" && : > "$tmp/build/nimbus"
(cd "$tmp" && packer validate -var region=us-east-1 -var source_hash=ci nimbus.pkr.hcl)
