#!/usr/bin/env bash
# One build step, one line: `hack/step.sh NAME COMMAND...` runs COMMAND with all its
# output (apt-get, go, pip, buildah) in a log of its own and prints the step's name,
# its elapsed time and that log's path. On a failure it prints the log's last lines
# and exits with the command's status.
set -uo pipefail

name="$1"; shift
here="$(cd "$(dirname "$0")/.." && pwd)"
logs="${SCHEMAGATE_BUILD_LOGS:-$here/.cluster/build-logs}"
mkdir -p "$logs"
log="$logs/$(printf '%s' "$name" | tr ' A-Z' '-a-z').log"
shown="${log#"$PWD/"}"
tail_lines="${SCHEMAGATE_LOG_TAIL:-40}"

start=$(date +%s%N)
"$@" >"$log" 2>&1 </dev/null
status=$?
elapsed=$(( ($(date +%s%N) - start) / 100000000 ))  # tenths of a second
took="$(( elapsed / 10 )).$(( elapsed % 10 ))s"

if [ "$status" -eq 0 ]; then
  printf '[build] %-15s %8s  log: %s\n' "$name" "$took" "$shown"
  exit 0
fi
printf '[build] %-15s FAILED after %s (exit %d); the last %d lines of %s:\n' \
  "$name" "$took" "$status" "$tail_lines" "$shown" >&2
tail -n "$tail_lines" "$log" | sed 's/^/    /' >&2
exit "$status"
