#!/bin/sh
# tests/fuzz/run_fuzz_ws.sh [BUILD-DIR [SECONDS]] -- the WebSocket harness alone (fuzz_ws.c,
# SECONDS default 20): run_fuzz.sh does the work for every harness.
exec "$(dirname "$0")/run_fuzz.sh" "${1:-build}" "${2:-20}" ws
