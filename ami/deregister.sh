#!/usr/bin/env bash
# Deregisters a Nimbus AMI and deletes its EBS snapshots.
#
#   ami/deregister.sh                    # as Pulumi's delete step: reads the
#                                        # manifest from PULUMI_COMMAND_STDOUT
#   ami/deregister.sh ami-0123… [region] # by hand
#
# Pulumi runs this when the bake command is replaced (a new AMI was baked)
# or destroyed, so `pulumi destroy` leaves no image or snapshot behind. An
# AMI that is already gone is not an error.
set -euo pipefail

log() { printf 'ami/deregister.sh: %s\n' "$*" >&2; }

ami="${1:-}"
region="${2:-}"
if [[ -z "${ami}" ]]; then
  # The manifest's artifact_id reads "region:ami-…".
  artifact="$(printf '%s' "${PULUMI_COMMAND_STDOUT:-}" | grep -o '"artifact_id": *"[^"]*"' | tail -n1 | sed 's/.*"\([^"]*\)"$/\1/' || true)"
  if [[ -n "${artifact}" ]]; then
    region="${artifact%%:*}"
    ami="${artifact#*:}"
  fi
fi
if [[ -z "${ami}" ]]; then
  log "no AMI id given and none in PULUMI_COMMAND_STDOUT; nothing to delete"
  exit 0
fi
region="${region:-${NIMBUS_AMI_REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}}}"
command -v aws >/dev/null || { log "the aws CLI is needed to delete ${ami}"; exit 1; }

snapshots="$(aws ec2 describe-images --region "${region}" --owners self --image-ids "${ami}" \
  --query 'Images[].BlockDeviceMappings[].Ebs.SnapshotId' --output text 2>/dev/null || true)"
if aws ec2 describe-images --region "${region}" --owners self --image-ids "${ami}" \
     --query 'Images[0].ImageId' --output text 2>/dev/null | grep -q "^${ami}$"; then
  log "deregistering ${ami} in ${region}"
  aws ec2 deregister-image --region "${region}" --image-id "${ami}"
else
  log "${ami} is already gone from ${region}"
fi
for snapshot in ${snapshots}; do
  [[ "${snapshot}" == snap-* ]] || continue
  log "deleting snapshot ${snapshot}"
  aws ec2 delete-snapshot --region "${region}" --snapshot-id "${snapshot}"
done
