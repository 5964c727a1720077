#!/usr/bin/env bash
# Builds the tools the cluster and trace tests need into one directory, once:
# kube-apiserver and etcd from tools/kube (k8s.io/kubernetes pinned there, its
# own module, outside go.work), helm from the Go module proxy and the
# OpenTelemetry Collector from tools/otelcol.
#
#   scripts/tools.sh [DIR]    DIR defaults to $RAMPART_TOOLS, else bin/tools
#
# A binary is rebuilt only when what pins it changed (a stamp beside it records
# tools/kube's go.mod and go.sum, or helm's version). The Kubernetes build takes
# about 11 CPU-minutes cold, so it runs at the lowest priority; the Go build
# cache makes a rebuild after a stamp change cheap.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-${RAMPART_TOOLS:-$root/bin/tools}}"
helm_version=v4.3.1
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

# Kubernetes and helm are built as upstream builds them: without the
# workspace's GOEXPERIMENT and outside go.work.
unset GOEXPERIMENT
export GOWORK=off

fresh() { # fresh STAMP VALUE BINARY...: the binaries exist and STAMP holds VALUE
	local stamp=$1 value=$2; shift 2
	for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
	[ "$(cat "$dir/$stamp" 2>/dev/null)" = "$value" ]
}

kube=$(cat "$root/tools/kube/go.mod" "$root/tools/kube/go.sum" | sha256sum | cut -d' ' -f1)
if fresh .kube.stamp "$kube" kube-apiserver etcd; then
	echo "tools: kube-apiserver and etcd are built ($dir)"
else
	echo "tools: building kube-apiserver and etcd into $dir (about 11 CPU-minutes cold)"
	start=$SECONDS
	(cd "$root/tools/kube" && nice -n 19 go build -mod=mod -trimpath -ldflags='-s -w' \
		-o "$dir/" k8s.io/kubernetes/cmd/kube-apiserver ./cmd/etcd)
	# -mod=mod may have completed go.sum: stamp what was built.
	kube=$(cat "$root/tools/kube/go.mod" "$root/tools/kube/go.sum" | sha256sum | cut -d' ' -f1)
	echo "$kube" >"$dir/.kube.stamp"
	echo "tools: kube-apiserver and etcd built in $((SECONDS - start))s"
fi

if fresh .helm.stamp "$helm_version" helm; then
	echo "tools: helm $helm_version is installed ($dir)"
else
	echo "tools: installing helm $helm_version into $dir"
	start=$SECONDS
	GOBIN="$dir" nice -n 19 go install -trimpath -ldflags='-s -w' "helm.sh/helm/v4/cmd/helm@$helm_version"
	echo "$helm_version" >"$dir/.helm.stamp"
	echo "tools: helm installed in $((SECONDS - start))s"
fi

# The OpenTelemetry Collector of the trace test (tools/otelcol: the OTLP
# receiver and the file exporter, every collector module at one release).
otelcol=$(cat "$root/tools/otelcol/go.mod" "$root/tools/otelcol/go.sum" "$root/tools/otelcol/main.go" | sha256sum | cut -d' ' -f1)
if fresh .otelcol.stamp "$otelcol" otelcol; then
	echo "tools: otelcol is built ($dir)"
else
	echo "tools: building otelcol into $dir"
	start=$SECONDS
	(cd "$root/tools/otelcol" && nice -n 19 go build -trimpath -ldflags='-s -w' -o "$dir/otelcol" .)
	echo "$otelcol" >"$dir/.otelcol.stamp"
	echo "tools: otelcol built in $((SECONDS - start))s"
fi
