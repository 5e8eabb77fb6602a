#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The live-migration benchmark (docs/migration.md), on a machine with an
# NVIDIA GPU, in one run:
#   - a tenant holding MIB MiB (default 16384) whose kernels rewrite a hot
#     set of HOT MiB (default 256) continuously (cu_pagecount -H), migrated
#     with the copying path to a second worker on the same GPU (--copy),
#     TIMES times (default 2), each with --report;
#   - its throughput (rounds per second) undisturbed, over the 3 s before
#     each migration, and during the pre-copy;
#   - the pinned D2H bandwidth of the GPU (bench/bench natively), for the
#     target on the total time;
#   - NVIDIA's stop-the-world checkpoint + restore of a native process
#     holding the same memory (bench/ckpt_native).
# Prints each figure with its target and the ratios. The tenant checks
# every page at the end (exit 0: no increment lost or doubled).
#
#   make bench test-programs && bench/mig_run.sh [MIB [HOT]]
#
# Reports and logs go to $OUT when it is set. Without a GPU it says so and
# exits 0.
set -u
cd "$(dirname "$0")/.." || exit 2
O=${O:-build}
BIN=$PWD/$O/bin
MIB=${1:-16384}
HOT=${2:-256}
TIMES=${TIMES:-2}
if ! nvidia-smi -L > /dev/null 2>&1; then
	echo "SKIP mig bench: no NVIDIA GPU"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-mig.XXXXXX") || exit 2
SOCK=$TMP/s
"$BIN/cuvisord" --socket "$SOCK" --backend cuda --log info:"$TMP/d.log" &
DPID=$!
trap 'kill $DPID 2>/dev/null; [ -n "${OUT:-}" ] && cp "$TMP"/*.json "$TMP"/*.log "$OUT"/ 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done

d2h=$("$PWD/$O/bench/bench" -n 1000 -f 1000 -s 0.05 -m $((1 << 30)) 2>/dev/null |
	awk '$1 == "metric" && $2 == "d2h_pinned_1G" { print $3 }')
echo "pinned D2H, 1 GiB, native: ${d2h:-?} GB/s"

log=$TMP/tenant.log
"$BIN/cuvisor" run --socket "$SOCK" --mem "$((MIB + 1024))M" -- \
	"$PWD/$O/tests/cu_pagecount" -m "$MIB" -H "$HOT" -t 0 -v 1000000 \
	> "$log" 2>&1 &
cli=$!
for i in $(seq 1200); do grep -q '^# ready' "$log" && break; sleep 0.1; done
id=$("$BIN/cuvisor" ps --socket "$SOCK" | awk 'NR > 1 { print $1 }' | tail -1)
echo "tenant $id: $MIB MiB, hot set $HOT MiB"
rc_all=0
for k in $(seq 1 "$TIMES"); do
	sleep 3
	t0=$(date +%s%N)
	"$BIN/cuvisor" migrate "$id" --copy --socket "$SOCK" \
		--report "$TMP/mig$k.json" || rc_all=1
	t1=$(date +%s%N)
	python3 - "$log" "$TMP/mig$k.json" "$t0" "$t1" "$MIB" "${d2h:-0}" <<'EOF'
import json, sys
log, rep, t0, t1, mib, d2h = sys.argv[1:7]
t0, t1, mib, d2h = int(t0), int(t1), int(mib), float(d2h)
pts = []
for line in open(log):
    f = line.split()
    if len(f) == 4 and f[:2] == ["#", "rounds"]:
        pts.append((int(f[3]), int(f[2])))
def rounds_at(t):
    # the last sample at or before t
    best = None
    for ts, n in pts:
        if ts <= t:
            best = (ts, n)
    return best
r = json.load(open(rep))
pause_ns = r["pause_ms"] * 1e6
a, b = rounds_at(t0 - 3_000_000_000), rounds_at(t0)
c = rounds_at(t1 - pause_ns - 50_000_000)
base = (b[1] - a[1]) / ((b[0] - a[0]) / 1e9) if a and b and b[0] > a[0] else 0
pre = (c[1] - b[1]) / ((c[0] - b[0]) / 1e9) if c and b and c[0] > b[0] else 0
sent = sum(x["bytes"] for x in r["rounds"])
total_target = 2 * mib * 2**20 / (d2h * 1e9) * 1e3 if d2h else 0
print("migration: %s, %d rounds (%s), %.2f GiB sent, link %.1f GB/s" % (
    r["result"], len(r["rounds"]), r["stop_reason"], sent / 2**30,
    r["link_gbps"]))
for x in r["rounds"]:
    print("  round %d %-8s %6.1f MiB in %8.1f ms, %d digests" % (
        x["round"], x["phase"], x["bytes"] / 2**20, x["ms"], x["digests"]))
print("%-44s %10.2f ms   target <= 30 ms: %s" % ("pause (suspend to running)",
      r["pause_ms"], "met" if r["pause_ms"] <= 30 else "NOT met"))
print("%-44s %10.1f ms   target <= %.0f ms (2 x %d MiB / %.1f GB/s): %s" % (
      "total", r["total_ms"], total_target, mib, d2h,
      "met" if total_target and r["total_ms"] <= total_target else "NOT met"))
print("%-44s %10.0f /s" % ("tenant rounds, undisturbed (3 s before)", base))
print("%-44s %10.0f /s   ratio %.3f, target >= 0.8: %s" % (
      "tenant rounds, during the pre-copy", pre, pre / base if base else 0,
      "met" if base and pre / base >= 0.8 else "NOT met"))
EOF
done
pid=$(awk '/^# guest_pid/ { print $3 }' "$log")
kill -TERM "$pid" 2>/dev/null
wait "$cli"
rc=$?
echo "tenant exit $rc (0: every page counted once per round); $(grep -E '^# rounds' "$log" | tail -1 | cut -d' ' -f1-3)"
[ $rc = 0 ] || { rc_all=1; tail -5 "$log"; }
echo "same-GPU handover without copying: not built (the pause above is the copying path's)"
echo "== NVIDIA process checkpoint + restore, $MIB MiB"
"$PWD/$O/bench/ckpt_native" "$MIB" || rc_all=1
exit $rc_all
