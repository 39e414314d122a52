#!/usr/bin/env bash
# Build and run the libFuzzer targets tests/fuzz/fuzz_*.c (clang, ASan+UBSan).
#
#   tests/fuzz/run.sh run [seconds]  fuzz each target N seconds (default 30)
#                                    on a copy of its corpus in build-fuzz/,
#                                    so new inputs never dirty the repo
#   tests/fuzz/run.sh replay         run each target once over its committed
#                                    corpus; fails on any crash
#   tests/fuzz/run.sh build          build only
#
# Optional extra arguments after the mode name pick targets by name, e.g.
# "run.sh run 60 fuzz_imap_parse". Adding a target: write
# tests/fuzz/fuzz_<name>.c, seed tests/fuzz/corpus/<name>/, and add one line
# "fuzz_<name>: <project sources it links>" to SOURCES below.
set -euo pipefail

SOURCES='
fuzz_imap_parse: proxy/imap_parse.c common/xmalloc.c common/str.c
fuzz_smtp_parse: proxy/smtp_parse.c common/xmalloc.c
fuzz_smtp_reply: upstream/up_smtp_resp.c common/xmalloc.c
fuzz_auth_sasl: auth/auth_sasl.c common/crypto.c common/xmalloc.c common/str.c
fuzz_autoconfig_xml: discover/disc_xml.c discover/disc.c common/xmalloc.c common/log.c -lexpat
fuzz_proxy_proto: proxy/proxy_proto.c
'
PKGS="libevent openssl"

cd "$(dirname "$0")/../.."
CLANG=${CLANG:-clang}
OUT=build-fuzz
CFLAGS="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1
 -std=c11 -D_GNU_SOURCE -I. -Wall -Wextra $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS)"

die() {
	echo "fuzz: $*" >&2
	exit 1
}

sources_of() {
	local line
	line=$(printf '%s\n' "$SOURCES" | sed -n "s/^$1:[[:space:]]*//p")
	[ -n "$line" ] || die "$1: no line in SOURCES in $0"
	printf '%s\n' "$line"
}

build() {
	local name=$1
	# shellcheck disable=SC2046,SC2086 # word splitting wanted
	"$CLANG" $CFLAGS -o "$OUT/$name" "tests/fuzz/$name.c" \
	    $(sources_of "$name") $LIBS || die "$name: build failed"
}

corpus_of() {
	printf 'tests/fuzz/corpus/%s\n' "${1#fuzz_}"
}

mode=${1:-}
[ $# -gt 0 ] && shift
secs=30
if [ "$mode" = run ] && [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
case "$mode" in
run | replay | build) ;;
*) die "usage: $0 run [seconds] [target...] | replay [target...] | build [target...]" ;;
esac

command -v "$CLANG" >/dev/null || die "$CLANG not found (make deps: clang libclang-rt-14-dev)"
targets=()
if [ $# -gt 0 ]; then
	targets=("$@")
else
	for f in tests/fuzz/fuzz_*.c; do
		[ -e "$f" ] || die "no tests/fuzz/fuzz_*.c"
		f=${f##*/}
		targets+=("${f%.c}")
	done
fi

mkdir -p "$OUT/artifacts"
failed=0
for t in "${targets[@]}"; do
	[ -f "tests/fuzz/$t.c" ] || die "$t: no tests/fuzz/$t.c"
	echo "fuzz: build $t" >&2
	build "$t"
	corpus=$(corpus_of "$t")
	case "$mode" in
	build) ;;
	replay)
		seeds=("$corpus"/*)
		[ -e "${seeds[0]}" ] || die "$t: no seeds in $corpus"
		echo "fuzz: replay $t over ${#seeds[@]} inputs" >&2
		if ! "$OUT/$t" -artifact_prefix="$OUT/artifacts/$t-" \
		    "${seeds[@]}" >"$OUT/$t.replay.log" 2>&1; then
			tail -n 40 "$OUT/$t.replay.log" >&2
			echo "fuzz: $t: FAILED (log: $OUT/$t.replay.log)" >&2
			failed=1
		fi
		;;
	run)
		# Accumulates across runs; the committed seeds are merged in.
		work="$OUT/corpus/${t#fuzz_}"
		mkdir -p "$work"
		[ -d "$corpus" ] && cp -r "$corpus/." "$work/"
		echo "fuzz: run $t for ${secs}s on $work" >&2
		if ! "$OUT/$t" -max_total_time="$secs" -print_final_stats=1 \
		    -artifact_prefix="$OUT/artifacts/$t-" "$work"; then
			echo "fuzz: $t: FAILED (artifacts in $OUT/artifacts/)" >&2
			failed=1
		fi
		;;
	esac
done
[ "$failed" -eq 0 ] || exit 1
echo "fuzz: ok (${targets[*]})" >&2
