#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The runtime benchmark (bench/rt_bench.cu): runs it natively and under
# `cuvisor run --backend cuda` in the same session and prints the ratios
# against the targets:
#   time from process start to the first finished cuBLAS GEMM <= 1.5x native
#   large SGEMM throughput                                      >= 0.99x
#   small SGEMMs (launch bound), throughput                    >= 0.90x
#   many small async runtime launches, throughput              >= 0.90x
#
#   make rt-bench && bench/rt_run.sh [N]     N: the large SGEMM's size
#
# Runs both sides alternately ROUNDS times (default 2) and compares each
# side's best. Writes the raw outputs to $OUT/rt_bench.log when OUT is set.
# Without a GPU it says so and exits 0.
set -u
cd "$(dirname "$0")/.." || exit 2
O=${O:-build}
B=$PWD/$O/bench/rt_bench
if ! nvidia-smi -L > /dev/null 2>&1; then
	echo "SKIP rt-bench: no NVIDIA GPU"
	exit 0
fi
[ -x "$B" ] || { echo "rt_run.sh: build $B first (make rt-bench)" >&2; exit 2; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-rtbench.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT

# Alternate the two sides ROUNDS times (default 2) and keep each side's
# best figure per metric: the lent machine is noisy from run to run.
for r in $(seq 1 "${ROUNDS:-2}"); do
	"$B" "$@" > "$TMP/native.$r" 2>&1 || { cat "$TMP/native.$r"; exit 1; }
	"$PWD/$O/bin/cuvisor" run --backend cuda -- "$B" "$@" > "$TMP/cuvisor.$r" 2>&1 ||
		{ cat "$TMP/cuvisor.$r"; exit 1; }
done
best() {
	awk '$1 == "metric" {
		hi = ($4 == "TFLOP/s")
		if (!($2 in v) || (hi ? $3 > v[$2] : $3 < v[$2])) v[$2] = $3
		u[$2] = $4; if (!($2 in seen)) { o[n++] = $2; seen[$2] = 1 }
	}
	$1 == "#" && !h { print; h = 1 }
	END { for (i = 0; i < n; i++) printf "metric %s %s %s\n", o[i], v[o[i]], u[o[i]] }' "$@"
}
best "$TMP"/native.* > "$TMP/native"
best "$TMP"/cuvisor.* > "$TMP/cuvisor"
[ -n "${OUT:-}" ] && cat "$TMP"/native.* "$TMP"/cuvisor.* > "$OUT/rt_bench.log"
grep '^#' "$TMP/native" | head -3
awk '
FNR == NR && $1 == "metric" { nat[$2] = $3; unit[$2] = $4; order[n++] = $2; next }
$1 == "metric" { cv[$2] = $3 }
END {
	printf "%-18s %12s %12s %8s  %-30s %s\n", "metric", "native", "cuvisor",
		"ratio", "target", "met"
	for (i = 0; i < n; i++) {
		m = order[i]; r = cv[m] / nat[m]; t = ""; ok = "-"
		if (m == "first_gemm_ms") { t = "<= 1.5x native time"; ok = r <= 1.5 }
		if (m == "sgemm_big_tflops") { t = ">= 0.99x throughput"; ok = r >= 0.99 }
		if (m == "sgemm_small_us") { t = ">= 0.90x throughput"; ok = 1 / r >= 0.90 }
		if (m == "rt_launch_us") { t = ">= 0.90x throughput"; ok = 1 / r >= 0.90 }
		printf "%-18s %12.4g %12.4g %8.3f  %-30s %s\n", m " (" unit[m] ")",
			nat[m], cv[m], r, t, ok == 1 ? "met" : (ok == 0 ? "NOT MET" : ok)
	}
}' "$TMP/native" "$TMP/cuvisor"
