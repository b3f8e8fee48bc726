# Nimbus: `make run` starts the whole system locally, `make test` runs every test.

GO ?= go
# An offline mirror of the model and labels, when one sits beside the repo
# (air-gapped machines); otherwise assets are downloaded and verified.
SHARED ?= $(abspath ../shared)
ifneq ($(wildcard $(SHARED)/assets),)
export NIMBUS_ASSETS ?= $(SHARED)/assets
endif

.PHONY: run test bench build

run:
	$(GO) run ./runtime/cmd/nimbus local

build:
	CGO_ENABLED=1 $(GO) build -o bin/nimbus ./runtime/cmd/nimbus

test:
	bash scripts/install-test-tools.sh
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	$(GO) test -run '^$$' -fuzz FuzzUpload -fuzztime 10s ./runtime/web/
	@if command -v packer >/dev/null; then ami/validate.sh; else echo "packer is not installed: skipping packer validate (apt-get install packer)"; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 10x ./runtime/classify/ ./runtime/local/
