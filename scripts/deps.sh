#!/usr/bin/env bash
# Install the Debian packages Postern builds, runs and tests with, when missing.
# Idempotent and fast when everything is present (one dpkg-query call).
set -euo pipefail

BUILD="gcc make pkg-config libevent-dev libhiredis-dev libcurl4-openssl-dev
 libcjson-dev libsasl2-dev libsasl2-modules libinih-dev libssl-dev openssl
 libexpat1-dev libc-ares-dev redis-server ca-certificates"
TEST="python3 curl dovecot-core dovecot-imapd dovecot-lmtpd dovecot-submissiond
 postfix swaks offlineimap3 isync libnet-ssleay-perl libio-socket-ssl-perl
 clang libclang-rt-14-dev dnsmasq-base"
# make bench: the servers it starts (bench/README.md) and nginx's mail proxy.
BENCH="python3 dovecot-core dovecot-imapd dovecot-lmtpd postfix nginx libnginx-mod-mail"

want="$BUILD"
case "${1:-}" in
test) want="$BUILD $TEST" ;;
bench) want="$BUILD $BENCH" ;;
esac

missing=()
for p in $want; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "postfix postfix/main_mailer_type select No configuration" |
	$SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null || true
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
