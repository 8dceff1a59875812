#!/bin/sh
# tests/fuzz/run_fuzz.sh [BUILD-DIR [SECONDS [HARNESS...]]] -- build every libFuzzer harness
# of tests/fuzz (or the ones named: ws line request json token config proxy) with clang
# -fsanitize=fuzzer,address,undefined and run each for SECONDS (default 15) from its seed
# corpus tests/fuzz/corpus_NAME.  Prints the executions of each; exits non-zero on a crash
# (the input is kept in BUILD-DIR/fuzz/, the log in BUILD-DIR/fuzz/fuzz_NAME.log).
# Without clang or its libFuzzer runtime it says so and exits 0.
#
# Each harness compiles the parsers it targets here, with coverage; the rest of roomd, which
# they only link against, comes from BUILD-DIR/src/libroomd.a (run ./scripts/build first).
# FUZZ_FLAGS adds libFuzzer options (scripts/fuzz uses it, e.g. -jobs=N).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/${1:-build}
secs=${2:-15}
if [ $# -gt 2 ]; then shift 2; else set --; fi
harnesses=${*:-ws line request json token config proxy}
src=$top/src

# The sources each harness fuzzes (compiled with coverage), and its extra libFuzzer options.
sources() {
    case $1 in
    ws) echo "$src/proto_ws.c $src/http_static.c $build/src/static_files.c $src/utf8.c" ;;
    line) echo "$src/proto_line.c" ;;
    request) echo "$src/request.c $src/msg.c $src/utf8.c" ;;
    json) echo "$src/msg.c $src/utf8.c" ;;
    token) echo "$src/token.c $src/msg.c $src/utf8.c" ;;
    config) echo "$src/config.c" ;;
    proxy) echo "$src/proxy_proto.c" ;;
    *) echo "run_fuzz: no harness '$1'" >&2; exit 2 ;;
    esac
}
options() {
    case $1 in
    config) echo "-max_len=10000" ;; # past config.c's 4096-byte line buffer
    json | request) echo "-max_len=8192" ;;
    *) echo "" ;;
    esac
}

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang not found, fuzzing skipped"
    exit 0
fi
out=$build/fuzz
mkdir -p "$out"
# clang without its libFuzzer runtime (libclang-rt-*-dev) cannot fuzz: skip, say why.
echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$out/probe.c"
if ! clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>"$out/probe.log"; then
    echo "fuzz: clang cannot link libFuzzer ($(tail -n 1 "$out/probe.log")), fuzzing skipped"
    exit 0
fi
[ -f "$build/src/libroomd.a" ] || { echo "fuzz: $build/src/libroomd.a missing (scripts/build)"; exit 2; }
libs=$(sed -n 's/^DEPS_LIBS = //p' "$build/src/Makefile")
cflags=$(sed -n 's/^DEPS_CFLAGS = //p' "$build/src/Makefile")
warn=$(sed -n 's/^WARN_CFLAGS = //p' "$build/src/Makefile")

failed=""
for name in $harnesses; do
    srcs=$(sources "$name")
    common="-I$src -I$build -include $build/autoconfig.h $cflags $warn"
    # The harness itself must be warning-free (the sources are the build's business).
    # shellcheck disable=SC2086
    clang -fsyntax-only -Werror $common "$here/fuzz_$name.c"
    # shellcheck disable=SC2086
    clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $common \
        "$here/fuzz_$name.c" $srcs "$build/src/libroomd.a" $libs -lm -pthread \
        -o "$out/fuzz_$name"
    mkdir -p "$out/corpus_$name"
    log=$out/fuzz_$name.log
    # shellcheck disable=SC2046,SC2086
    if "$out/fuzz_$name" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$out/fuzz_$name-" $(options "$name") ${FUZZ_FLAGS:-} \
        "$out/corpus_$name" "$here/corpus_$name" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        cov=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*/\1/p')
        echo "fuzz_$name: ${execs:-?} executions in ${secs}s, ${cov:-cov: ?}, no crash"
    else
        tail -n 60 "$log"
        echo "fuzz_$name: FAILED (crash input in $out/, log $log)"
        failed="$failed $name"
    fi
done
[ -z "$failed" ] || { echo "fuzz: crashes in:$failed"; exit 1; }
