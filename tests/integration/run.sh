#!/usr/bin/env bash
# Integration tests: tests/integration/run.sh BUILD_DIR [PATTERN]
# Runs every cases/NN_*.py in order through lib/runner.py (one Python process
# and one Env -- temp dir, free ports, redis/dovecot/posternd -- per file).
# PATTERN selects tests whose id "NN_name.test_func" contains it (or matches
# it as a glob). Last line: "N passed, N failed"; exit 1 if any failed.
# Nothing is left running: each runner stops its processes by PID, also on
# failure, timeout (SIGTERM from timeout(1)) and Ctrl-C.
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD_DIR [PATTERN]" >&2
	exit 2
fi
build=$1
pattern=${2:-}
case "$build" in
/*) ;;
*) build="$PWD/$build" ;;
esac
case_timeout=${POSTERN_IT_CASE_TIMEOUT:-900}
export PYTHONDONTWRITEBYTECODE=1

passed=0
failed=0

# A missing server is a failure with a clear message, never a silent skip.
for tool in python3 redis-server redis-cli dovecot openssl; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "FAIL prerequisites: $tool not installed (run: scripts/deps.sh test)"
		failed=$((failed + 1))
	fi
done
if [ "$failed" -gt 0 ]; then
	echo "$passed passed, $failed failed"
	exit 1
fi

resfile=$(mktemp /tmp/postern-it-result.XXXXXX)
child=""
interrupted=0
# Forward INT/TERM/HUP to the running case (timeout(1) passes it on to the
# runner, which stops its servers), wait for it, then stop.
on_signal() {
	interrupted=1
	[ -n "$child" ] && kill -TERM "$child" 2>/dev/null
}
trap on_signal INT TERM HUP
trap 'rm -f "$resfile"' EXIT

for f in "$here"/cases/[0-9][0-9]_*.py; do
	[ -e "$f" ] || continue
	: >"$resfile"
	timeout --signal=TERM --kill-after=30 "$case_timeout" \
		python3 -u "$here/lib/runner.py" "$build" "$f" "$pattern" "$resfile" &
	child=$!
	rc=0
	wait "$child" || rc=$?
	# wait returns early when a trapped signal arrives: wait for cleanup.
	while kill -0 "$child" 2>/dev/null; do
		rc=0
		wait "$child" || rc=$?
	done
	child=""
	read -r p fl <"$resfile" || { p=0; fl=0; }
	if [ -z "${p:-}" ] || { [ "$rc" -ne 0 ] && [ "${fl:-0}" -eq 0 ]; }; then
		# The runner died without reporting (crash or timeout).
		echo "FAIL $(basename "$f" .py) (runner exited $rc without a result)"
		p=${p:-0}
		fl=1
	fi
	passed=$((passed + p))
	failed=$((failed + fl))
	if [ "$interrupted" -eq 1 ]; then
		echo "interrupted" >&2
		echo "$passed passed, $failed failed"
		exit 130
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
