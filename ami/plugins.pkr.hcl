# Plugin requirements, kept apart from the template: Packer 1.6.x (Debian's
# package) rejects required_plugins blocks, so CI validates the other files
# without this one. Run `packer init ami/` once with Packer 1.7 or newer.
packer {
  required_version = ">= 1.7.0"
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.2.0"
    }
  }
}
