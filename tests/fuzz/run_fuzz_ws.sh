#!/bin/sh
# tests/fuzz/run_fuzz_ws.sh [BUILD-DIR [SECONDS]] -- build fuzz_ws with clang's libFuzzer
# (plus ASan and UBSan) and run it for SECONDS (default 20) from the seed corpus in
# tests/fuzz/corpus_ws. Exits non-zero on a crash (the input is kept in BUILD-DIR/fuzz/).
# Without clang it says so and exits 0.
#
# The parsers (proto_ws.c and what it uses) are compiled here with coverage; the rest of
# roomd, which they only link against, comes from BUILD-DIR/src/libroomd.a.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/${1:-build}
secs=${2:-20}
if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz_ws: clang not found, fuzzing skipped"
    exit 0
fi
out=$build/fuzz
mkdir -p "$out/corpus_ws"
# clang without its libFuzzer runtime (libclang-rt-*-dev) cannot fuzz: skip, say why.
echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$out/probe.c"
if ! clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>"$out/probe.log"; then
    echo "fuzz_ws: clang cannot link libFuzzer ($(tail -n 1 "$out/probe.log")), fuzzing skipped"
    exit 0
fi
libs=$(sed -n 's/^DEPS_LIBS = //p' "$build/src/Makefile")
cflags=$(sed -n 's/^DEPS_CFLAGS = //p' "$build/src/Makefile")
# shellcheck disable=SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$top/src" -I"$build" -include "$build/autoconfig.h" $cflags \
    "$here/fuzz_ws.c" "$top/src/proto_ws.c" "$top/src/http_static.c" \
    "$build/src/static_files.c" "$top/src/utf8.c" \
    "$build/src/libroomd.a" $libs -pthread -o "$out/fuzz_ws"
"$out/fuzz_ws" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/" \
    "$out/corpus_ws" "$here/corpus_ws" 2>"$out/fuzz_ws.log" || {
    tail -n 60 "$out/fuzz_ws.log"
    echo "fuzz_ws: FAILED (crash input in $out/)"
    exit 1
}
grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$out/fuzz_ws.log" || true
echo "fuzz_ws: no crash in ${secs}s"
