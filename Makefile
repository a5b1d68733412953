# The two commands of the README. Both run the idempotent set-up first.
.PHONY: demo test setup

setup:
	@./scripts/setup.sh

# The main job on the embedded default: collect a dataset, train QAM offline then online, report.
demo: setup
	cargo run -- demo $(ARGS)

# Every check CI runs: formatting, lints, and the whole test suite.
test: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace
