#!/bin/sh
# test_man.sh -- the manual pages: mandoc -T lint finds nothing, and
# stashd.conf(5) names every key of conf/stashd.conf.
# Exit 0 pass, 1 fail, 77 skip (no mandoc).
set -u
SRC=${TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
command -v mandoc >/dev/null 2>&1 || { echo "skip: no mandoc" >&2; exit 77; }
fails=0
passes=0
for page in stashd.8 stashd.conf.5 stash.1 libstash.3; do
	if out=$(mandoc -T lint -W warning "$SRC/man/$page" 2>&1) &&
	    [ -z "$out" ]; then
		passes=$((passes + 1))
	else
		echo "FAIL: $page: $out" >&2
		fails=$((fails + 1))
	fi
done
for key in $(sed -n 's/^#\{0,1\}\([a-z_]*\) =.*/\1/p' "$SRC/conf/stashd.conf"); do
	if grep -q "^\.It Cm $key " "$SRC/man/stashd.conf.5"; then
		passes=$((passes + 1))
	else
		echo "FAIL: stashd.conf.5 does not describe $key" >&2
		fails=$((fails + 1))
	fi
done
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
