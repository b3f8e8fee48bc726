#!/usr/bin/env bash
# Runs as root on the temporary build instance (Packer "shell" provisioner).
# Installs what the file provisioners uploaded to /tmp; downloads nothing but
# OS packages. Units are installed disabled: user data enables the role's.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Let first-boot cloud-init finish before touching apt.
cloud-init status --wait >/dev/null || true

apt-get update
apt-get -y -o Dpkg::Options::=--force-confold upgrade
apt-get -y install --no-install-recommends ca-certificates curl

# Session Manager is the only way in (no SSH key, no port 22 at run time).
# Canonical's images ship the agent as a snap; install it if it is missing.
if ! snap list amazon-ssm-agent >/dev/null 2>&1; then
  snap install amazon-ssm-agent --classic
fi
systemctl enable snap.amazon-ssm-agent.amazon-ssm-agent.service

# Unprivileged service account.
if ! id nimbus >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/nimbus --no-create-home --shell /usr/sbin/nologin nimbus
fi

install -m 0755 -o root -g root /tmp/nimbus /usr/local/bin/nimbus
install -d -m 0755 -o root -g root /opt/nimbus/assets
for f in libonnxruntime.so.1 mobilenetv2-12-int8.onnx imagenet-simple-labels.json; do
  test -s "/tmp/nimbus-assets/$f" || { echo "missing asset $f" >&2; exit 1; }
done
install -m 0644 -o root -g root /tmp/nimbus-assets/* /opt/nimbus/assets/
(cd /opt/nimbus/assets && sha256sum -- * > /opt/nimbus/SHA256SUMS)

# The binary must find every shared library it links (glibc >= 2.36 here).
if ldd /usr/local/bin/nimbus | grep -q 'not found'; then
  ldd /usr/local/bin/nimbus >&2
  exit 1
fi

install -m 0644 -o root -g root /tmp/nimbus-web.service /tmp/nimbus-scaler.service /tmp/nimbus-worker.service /etc/systemd/system/
install -d -m 0750 -o root -g nimbus /etc/nimbus
systemctl daemon-reload
systemd-analyze verify /etc/systemd/system/nimbus-*.service

# Leave no build residue in the image.
rm -rf /tmp/nimbus /tmp/nimbus-assets /tmp/nimbus-*.service
apt-get clean
rm -rf /var/lib/apt/lists/*
cloud-init clean --logs
