#!/usr/bin/env bash
# Builds here what the GPU machine runs (it has libtorch but no Rust toolchain) and puts it in the
# git-ignored carry/ folder, small enough for the device tool's 64 MiB: the qamlab binary, the CUDA
# graph, fixture parity and TF32 test binaries, and the reference fixtures. Then, on the GPU machine,
# scripts/gpu-check.sh runs them (see the README, "Using a GPU").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
./scripts/setup.sh
carry="$root/carry"
rm -rf "$carry.tmp" && mkdir -p "$carry.tmp"

# One build profile for everything (the tests'): no second cold build for a release binary.
cargo build --bin qamlab
target="${CARGO_TARGET_DIR:-$root/target}"
cp "$target/debug/qamlab" "$carry.tmp/qamlab"
for test in cuda_graphs fixture_parity precision; do
    path=$(cargo test -p qamlab-agent --test "$test" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
    [ -n "$path" ] || { echo "gpu-carry: no test binary for $test" >&2; exit 1; }
    cp "$path" "$carry.tmp/$test"
done
# The one GPU call must not find a build without the CUDA shims (built only where the torch wheel's
# CUDA headers were found, with a cargo warning otherwise): their error text is in the binaries.
for b in qamlab cuda_graphs; do
    grep -q "in a qamlab libtorch shim" "$carry.tmp/$b" || {
        echo "gpu-carry: $b was built without the CUDA shims (see the cargo warning about the CUDA headers)" >&2
        exit 1
    }
done
strip "$carry.tmp"/qamlab "$carry.tmp"/cuda_graphs "$carry.tmp"/fixture_parity "$carry.tmp"/precision
# Bevy's renderer makes the stripped binary ~90 MiB; gzip brings it to ~30 (gpu-check.sh unpacks it).
gzip -6 "$carry.tmp/qamlab"

fixtures="${QAMLAB_FIXTURES:-$root/../shared/fixtures/qam}"
# Without the lab's beside the checkout, the repository's copy of them.
[ -d "$fixtures" ] || [ -n "${QAMLAB_FIXTURES:-}" ] || fixtures="$root/agent/tests/fixtures/qam"
if [ -d "$fixtures" ]; then
    cp -r "$fixtures" "$carry.tmp/fixtures"
else
    echo "gpu-carry: no fixtures at $fixtures (set QAMLAB_FIXTURES); the CUDA parity test will be skipped" >&2
fi

rm -rf "$carry" && mv "$carry.tmp" "$carry"
size=$(du -sm "$carry" | cut -f1)
echo "gpu-carry: $carry holds ${size} MiB:"
ls -l "$carry"
if [ "$size" -ge 64 ]; then
    echo "gpu-carry: over the device tool's 64 MiB" >&2
    exit 1
fi
