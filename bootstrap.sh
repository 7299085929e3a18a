#!/bin/sh
# bootstrap.sh -- set up a fresh Debian 12 machine, build stashd, then:
#
#   ./bootstrap.sh run     start stashd in the foreground, socket, database
#                          and journal in ./run/ of the working tree
#                          (Ctrl-C stops it)
#   ./bootstrap.sh check   run the whole test suite (make check), then
#                          again built with AddressSanitizer and
#                          UndefinedBehaviorSanitizer in ./build-asan/
#
# It installs the Debian packages that are missing (apt-get, as root or
# through sudo), runs autoreconf and configure when needed, and builds.
# Extra arguments after "run" go to stashd.
set -eu

cd "$(dirname "$0")"

PACKAGES="build-essential autoconf automake libtool pkg-config
	libevent-dev libjansson-dev libsqlite3-dev libcmocka-dev
	libsystemd-dev libinih-dev socat valgrind systemd python3 mandoc
	redis-tools python3-redis"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "bootstrap: installing:$missing"
	if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -q
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

if [ ! -x configure ] || [ configure.ac -nt configure ] ||
    [ Makefile.am -nt configure ]; then
	autoreconf -fi
fi
if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
	./configure ${CONFIGURE_FLAGS:-}
fi
JOBS=$(nproc 2>/dev/null || echo 2)
make -j"$JOBS"

cmd=${1:-run}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
	mkdir -p run
	echo "bootstrap: stashd on $(pwd)/run/stashd.sock," \
	    "database run/stashd.db (Ctrl-C stops it)"
	exec ./stashd -s run/stashd.sock -d run/stashd.db "$@"
	;;
check)
	make -j"$JOBS" check || {
		cat tests/*.log test-suite.log 2>/dev/null | tail -200
		exit 1
	}
	# The same suite under ASan and UBSan, on a fresh copy of the
	# distributed sources (this tree is configured already, so it cannot
	# host a VPATH build); any sanitizer report fails the run.
	echo "bootstrap: the suite again with sanitizers, in build-asan/"
	rm -rf build-asan
	make distdir distdir=build-asan >/dev/null
	(cd build-asan && ./configure -q --enable-sanitizers \
	    ${CONFIGURE_FLAGS:-} && make -j"$JOBS" check) || {
		cat build-asan/tests/*.log build-asan/test-suite.log \
		    2>/dev/null | tail -200
		exit 1
	}
	;;
*)
	echo "usage: $0 [run [stashd options] | check]" >&2
	exit 2
	;;
esac
