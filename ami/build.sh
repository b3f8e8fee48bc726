#!/usr/bin/env bash
# Bakes the Nimbus AMI with Packer.
#
#   ami/build.sh            # from anywhere; region from NIMBUS_AMI_REGION,
#                           # AWS_REGION or AWS_DEFAULT_REGION (us-east-1)
#
# Pulumi runs this (infra/image.go) when nimbus:amiId is empty. It
#   1. fetches and verifies the offline assets into ami/build/assets
#      (ONNX Runtime, the model, the labels),
#   2. builds the linux/amd64 nimbus binary into ami/build/nimbus (cgo),
#   3. runs `packer build`, which uploads both plus the systemd units.
# Everything is logged to stderr; stdout carries only Packer's manifest
# (ami/build/manifest.json), from which Pulumi reads the AMI id.
#
# Needs: Go with a C compiler (cgo), npm (or NIMBUS_ASSETS naming an
# offline mirror of the assets), Packer (>= 1.7 with the amazon plugin,
# or 1.6.x which bundles it), AWS credentials in the environment. Run it
# on linux/amd64: the assets step fetches the ONNX Runtime build for the
# machine it runs on.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "${here}")"
build="${here}/build"
region="${NIMBUS_AMI_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}}"
source_hash="${NIMBUS_SOURCE_HASH:-unknown}"

log() { printf 'ami/build.sh: %s\n' "$*" >&2; }

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  log "bake from linux/amd64 (this is $(uname -s)/$(uname -m)): the AMI needs the linux/amd64 ONNX Runtime and a cgo build for it"
  exit 1
fi
for tool in go packer; do
  command -v "${tool}" >/dev/null || { log "${tool} is not installed"; exit 1; }
done

{
  rm -rf "${build}"
  mkdir -p "${build}/assets"
  cd "${root}"

  log "fetching assets into ${build}/assets"
  go run ./runtime/cmd/nimbus assets --out "${build}/assets"
  for f in libonnxruntime.so.1 mobilenetv2-12-int8.onnx imagenet-simple-labels.json; do
    [[ -s "${build}/assets/${f}" ]] || { log "asset ${f} missing after the assets step"; exit 1; }
  done

  log "building the nimbus binary (linux/amd64, cgo)"
  CGO_ENABLED=1 GOOS=linux GOARCH=amd64 go build -trimpath -o "${build}/nimbus" ./runtime/cmd/nimbus

  cd "${here}"
  packer_version="$(packer version | head -n1 | sed 's/^Packer v//')"
  log "packer ${packer_version}: building in ${region} (source ${source_hash})"
  vars=(-var "region=${region}" -var "source_hash=${source_hash}")
  # e.g. NIMBUS_BAKE_SSH_CIDRS='["203.0.113.7/32"]' narrows who may reach
  # the temporary build instance's SSH port.
  if [[ -n "${NIMBUS_BAKE_SSH_CIDRS:-}" ]]; then
    vars+=(-var "ssh_source_cidrs=${NIMBUS_BAKE_SSH_CIDRS}")
  fi
  case "${packer_version}" in
    1.[0-6].*)
      # Bundled amazon builder; plugins.pkr.hcl is for Packer >= 1.7 only.
      packer build -color=false "${vars[@]}" nimbus.pkr.hcl ;;
    *)
      packer init .
      packer build -color=false "${vars[@]}" . ;;
  esac
} >&2

cat "${build}/manifest.json"
