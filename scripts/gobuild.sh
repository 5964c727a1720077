#!/usr/bin/env bash
# gobuild.sh OUT PKG: go build -o OUT PKG. On a terminal it shows how far the
# build got, on one line: packages compiled of those the binary needs, the
# rate and the time left. The first build of the CLI compiles Trivy and
# takes minutes; later ones compile little and finish at once. In a pipe or
# a file (CI) it is plain go build.
set -uo pipefail
out=$1 pkg=$2
if [ ! -t 2 ]; then
	exec ${GO:-go} build -o "$out" "$pkg"
fi
total=$(${GO:-go} list -deps "$pkg" | wc -l)
start=$SECONDS
n=0
# go build -v names each package as it compiles it; anything else it says
# (a "# pkg" header, file:line: errors) is passed on as it is.
${GO:-go} build -v -o "$out" "$pkg" 2>&1 | while IFS= read -r line; do
	case $line in
	'#'* | *:* | *' '*)
		printf '\r\033[K%s\n' "$line" >&2
		continue
		;;
	esac
	n=$((n + 1))
	elapsed=$((SECONDS - start))
	msg="building $pkg: $n of up to $total packages compiled"
	if [ "$elapsed" -gt 0 ]; then
		rate=$((n * 60 / elapsed))
		left=$(((total - n) * elapsed / n))
		msg="$msg ($rate/min, at most ${left}s left)"
	fi
	printf '\r\033[K%s' "$msg" >&2
done
status=${PIPESTATUS[0]}
printf '\r\033[K' >&2
exit "$status"
