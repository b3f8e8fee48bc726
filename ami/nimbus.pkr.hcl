# Nimbus AMI: Ubuntu 24.04 LTS (amd64) with the nimbus binary, its offline
# assets (ONNX Runtime, model, labels) and the systemd units for both roles.
# Nothing is downloaded during the bake except OS packages: the binary and the
# assets come from build/ (see build.sh). Units are installed but not enabled;
# user data enables the role's units at first boot.
#
# Keep this file valid for Packer 1.6.6 (no data sources, no required_plugins):
# CI runs `packer validate -syntax-only` on it with Debian's package.

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Region the AMI is built and registered in."
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "Instance type of the temporary build instance."
}

variable "build_dir" {
  type        = string
  default     = "build"
  description = "Directory (relative to ami/) holding nimbus, assets/ and the manifest."
}

variable "ssh_source_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0"]
  description = "Who may reach the temporary build instance's SSH port during the bake (narrow it to your address)."
}

variable "source_hash" {
  type        = string
  default     = "unknown"
  description = "Content hash of runtime/ and ami/ that this image was built from."
}

locals {
  stamp = formatdate("YYYYMMDDhhmmss", timestamp())
  tags = {
    Name                = "nimbus"
    "nimbus:source-hash" = var.source_hash
    "nimbus:base"       = "ubuntu-24.04-amd64"
  }
}

source "amazon-ebs" "nimbus" {
  region          = var.region
  instance_type   = var.instance_type
  ami_name        = "nimbus-${local.stamp}"
  ami_description = "Nimbus image classification (web, scaler, worker), source ${var.source_hash}"

  # Canonical's Ubuntu 24.04 LTS (Noble) amd64 images, newest first.
  source_ami_filter {
    filters = {
      name                = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["099720109477"]
    most_recent = true
  }

  # Packer connects over SSH with a temporary key pair and security group
  # that it deletes after the bake; the AMI itself carries no SSH key and
  # Nimbus's security groups never open port 22.
  communicator                          = "ssh"
  ssh_username                          = "ubuntu"
  temporary_security_group_source_cidrs = var.ssh_source_cidrs

  launch_block_device_mappings {
    device_name           = "/dev/sda1"
    volume_size           = 8
    volume_type           = "gp3"
    throughput            = 125
    iops                  = 3000
    delete_on_termination = true
  }

  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = { Name = "nimbus-ami-bake" }
}

build {
  sources = ["source.amazon-ebs.nimbus"]

  provisioner "file" {
    source      = "${var.build_dir}/nimbus"
    destination = "/tmp/nimbus"
  }

  # The trailing slash uploads the directory's contents.
  provisioner "file" {
    source      = "${var.build_dir}/assets/"
    destination = "/tmp/nimbus-assets"
  }

  provisioner "file" {
    sources     = ["nimbus-web.service", "nimbus-scaler.service", "nimbus-worker.service"]
    destination = "/tmp/"
  }

  provisioner "shell" {
    script          = "install.sh"
    execute_command = "chmod +x {{ .Path }}; sudo -E bash '{{ .Path }}'"
  }

  # build.sh and Pulumi read the AMI id from this manifest.
  post-processor "manifest" {
    output     = "${var.build_dir}/manifest.json"
    strip_path = true
    custom_data = {
      source_hash = var.source_hash
    }
  }
}
