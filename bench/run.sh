#!/usr/bin/env bash
# make bench: builds the load generator (bench/pbench.c) next to posternd and
# runs bench/bench.py, which starts Redis, Dovecot, Postfix, posternd, nginx
# and the helpers on loopback, measures, prints the table and writes
# bench/results.json, then stops everything it started.
#   BENCH_QUICK=1 bench/run.sh    shorter run (smaller mailbox, 2 s runs)
#   bench/run.sh BUILD_DIR        posternd from another build dir
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${1:-$repo/build}
case "$build" in
/*) ;;
*) build="$PWD/$build" ;;
esac

if [ ! -x "$build/posternd" ]; then
	echo "bench: $build/posternd missing (make all)" >&2
	exit 1
fi
for tool in python3 redis-server dovecot nginx openssl /usr/lib/postfix/sbin/master; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "bench: $tool not installed (scripts/deps.sh bench)" >&2
		exit 1
	fi
done
if [ ! -e /usr/lib/nginx/modules/ngx_mail_module.so ]; then
	echo "bench: nginx mail module missing (scripts/deps.sh bench)" >&2
	exit 1
fi

mkdir -p "$build/bench"
pb="$build/bench/pbench"
if [ ! -x "$pb" ] || [ "$here/pbench.c" -nt "$pb" ]; then
	${CC:-cc} -std=c11 -O2 -g -Wall -Wextra -Wshadow -Wformat=2 -Werror \
		-pthread -o "$pb" "$here/pbench.c" -lssl -lcrypto
fi

export BENCH_BUILD="$build" PYTHONDONTWRITEBYTECODE=1
# Bound: a full run takes about ten minutes; SIGTERM lets the harness stop
# every server it started.
exec timeout --signal=TERM --kill-after=60 "${BENCH_TIMEOUT:-1800}" \
	python3 -u "$here/bench.py"
