# The two commands of the README. Both run the idempotent set-up first.
.PHONY: demo test setup

setup:
	@./scripts/setup.sh

# The main job on the embedded default: collect a dataset, train QAM offline then online, report.
demo: setup
	cargo run -- demo $(ARGS)

# Every check CI runs: formatting, lints, the API docs' links, and the whole test suite. (The docs
# reuse the dependencies' metadata that clippy's check build made: seconds, not a third build.)
test: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --quiet
	cargo test --workspace
