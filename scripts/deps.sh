#!/bin/sh
# Checks that the Debian packages moesim builds and runs with are installed, and installs the
# missing ones when it can (root with apt-get). Otherwise prints the exact command and fails.
# Used by `make run`, `make test` and .ci/run, so a fresh machine needs nothing else.
set -eu
PKGS="make gcc clang libc6-dev libyaml-dev libhwloc-dev libpapi-dev gnuplot-nox libopenmpi-dev openmpi-bin libdnnl-dev libclang-rt-14-dev"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "deps: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "deps: missing packages:$missing" >&2
  echo "deps: run as root:  $cmd" >&2
  exit 1
fi
