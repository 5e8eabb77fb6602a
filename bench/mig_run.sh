#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The live-migration benchmark (docs/migration.md), on a machine with an
# NVIDIA GPU, in one run:
#   - copying: a tenant holding MIB MiB (default 16384) whose kernels
#     rewrite a hot set of HOT MiB (default 256) continuously, migrated
#     with the copying path to a second worker on the same GPU (--copy),
#     for each kind in COPY_KINDS (default "launch rewrite"): launch, a
#     kernel adds 1 to one word per 4 KiB page of the hot set (cu_pagecount
#     -H: bound by launch latency, the tenant most sensitive to anything
#     else on the GPU or its PCIe link); rewrite, a kernel adds 1 to every
#     word of the hot set (-H -W: bound by memory bandwidth); TIMES times
#     (default 2) for each --max-rate in COPY_RATES (MB/s, default "0":
#     none), each with
#     --report; its throughput (rounds per second) undisturbed, over the
#     3 s before each migration, and during the pre-copy; the pinned D2H
#     bandwidth of the GPU (bench/bench natively), for the target on the
#     total time;
#   - sharing: tenants of each size in SHARE_MIB (default "1024 16384
#     65536") migrated TIMES times to a second worker on the same GPU
#     without --copy (the memory is shared, not copied): the pause
#     (SHARE_MIB="" for none);
#   - NVIDIA's stop-the-world checkpoint + restore of a native process
#     holding the same memory (bench/ckpt_native), for each size in
#     NATIVE_MIB (default: MIB and the sizes of SHARE_MIB up to 16384).
# Prints each figure with its target and the ratios. The tenants check
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
SHARE_MIB=${SHARE_MIB-1024 16384 65536}
COPY_KINDS=${COPY_KINDS-launch rewrite}
COPY_RATES=${COPY_RATES:-0}
if [ -z "${NATIVE_MIB+x}" ]; then
	NATIVE_MIB=$MIB
	for m in $SHARE_MIB; do
		[ "$m" -le 16384 ] && [ "$m" != "$MIB" ] && NATIVE_MIB="$NATIVE_MIB $m"
	done
fi
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
rc_all=0
declare -A PAUSE

# tenant_start MIB [launch|rewrite]: a counting tenant; sets log, cli, id.
tenant_start() {
	log=$TMP/tenant-$1-${2:-launch}.log
	"$BIN/cuvisor" run --socket "$SOCK" --mem "$(($1 + 1024))M" -- \
		"$PWD/$O/tests/cu_pagecount" -m "$1" -H "$HOT" \
		$([ "${2:-}" = rewrite ] && echo -W) -t 0 -v 1000000 \
		> "$log" 2>&1 &
	cli=$!
	for i in $(seq 1800); do grep -q '^# ready' "$log" && break; sleep 0.1; done
	id=$("$BIN/cuvisor" ps --socket "$SOCK" | awk 'NR > 1 { print $1 }' | tail -1)
	echo "tenant $id: $1 MiB, hot set $HOT MiB, ${2:-launch} bound"
}

tenant_end() {
	local pid rc
	pid=$(awk '/^# guest_pid/ { print $3 }' "$log")
	kill -TERM "$pid" 2>/dev/null
	wait "$cli"
	rc=$?
	echo "tenant exit $rc (0: every page counted once per round); $(grep -E '^# rounds' "$log" | tail -1 | cut -d' ' -f1-3)"
	[ $rc = 0 ] || { rc_all=1; tail -5 "$log"; }
}

# migrate MIB K copy|share [RATE]
migrate() {
	local mib=$1 k=$2 path=$3 rate=${4:-0} t0 t1 rep=$TMP/mig-$3-$1-$2.json rc i
	# The daemon's spare worker for the next migration is started after
	# the last one: not inside the 3 s the undisturbed rate is taken from.
	for i in $(seq 100); do
		[ "$(grep -c 'spare worker pid [0-9]* ready' "$TMP/d.log")" -gt \
		  "$(grep -c 'the spare worker pid [0-9]* on gpu [0-9]* takes it' "$TMP/d.log")" ] && break
		sleep 0.1
	done
	sleep 3
	t0=$(date +%s%N)
	"$BIN/cuvisor" migrate "$id" --socket "$SOCK" \
		$([ "$path" = copy ] && echo --copy) \
		$([ "$rate" != 0 ] && echo --max-rate "$rate") --report "$rep"
	rc=$?
	t1=$(date +%s%N)
	[ $rc = 0 ] || return 1
	python3 - "$log" "$rep" "$t0" "$t1" "$mib" "${d2h:-0}" "$path" <<'PY'
import json, sys
log, rep, t0, t1, mib, d2h, path = sys.argv[1:8]
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
if path == "share":
    print("migration: %s, memory shared (%d objects, %.1f GiB), command %.1f ms" % (
        r["result"], sum(x["objects"] for x in r["rounds"]),
        r["shared_bytes"] / 2**30, (t1 - t0) / 1e6))
    print("%-44s %10.2f ms   target <= 5 ms: %s" % (
        "pause, %d MiB, sharing" % mib, r["pause_ms"],
        "met" if r["pause_ms"] <= 5 else "NOT met"))
    print("%-44s %10.1f ms" % ("total", r["total_ms"]))
    print("PAUSE %.3f" % r["pause_ms"])
    sys.exit(0)
pause_ns = r["pause_ms"] * 1e6
a, b = rounds_at(t0 - 3_000_000_000), rounds_at(t0)
c = rounds_at(t1 - pause_ns - 50_000_000)
base = (b[1] - a[1]) / ((b[0] - a[0]) / 1e9) if a and b and b[0] > a[0] else 0
pre = (c[1] - b[1]) / ((c[0] - b[0]) / 1e9) if c and b and c[0] > b[0] else 0
sent = sum(x["bytes"] for x in r["rounds"])
total_target = 2 * mib * 2**20 / (d2h * 1e9) * 1e3 if d2h else 0
print("migration: %s, %d rounds (%s), %.2f GiB sent, link %.1f GB/s, command %.0f ms, --max-rate %s" % (
    r["result"], len(r["rounds"]), r["stop_reason"], sent / 2**30,
    r["link_gbps"], (t1 - t0) / 1e6,
    "%d MB/s" % r["max_rate_mbs"] if r["max_rate_mbs"] else "none"))
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
# The tenant's rate, 100 ms at a time, from 0.3 s before the command.
tl = [(ts, n) for ts, n in pts if t0 - 300_000_000 <= ts <= t1 + 100_000_000]
print("  tenant krounds/s per sample from t0-0.3 s (t0 = the command): " +
      " ".join("%.0f@%+.0f" % ((n1 - n0) / ((s1 - s0) / 1e9) / 1e3,
                               (s1 - t0) / 1e6)
               for (s0, n0), (s1, n1) in zip(tl, tl[1:])))
print("PAUSE %.3f" % r["pause_ms"])
PY
}

# run_path PATH MIB [RATE]: TIMES migrations; PAUSE[PATH-MIB] lists the
# pauses.
run_path() {
	local k
	for k in $(seq 1 "$TIMES"); do
		migrate "$2" "$k" "$1" "${3:-0}" > "$TMP/m.out" 2>&1 || rc_all=1
		grep -v '^PAUSE ' "$TMP/m.out"
		PAUSE[$1-$2]="${PAUSE[$1-$2]:-} $(awk '$1 == "PAUSE" { print $2 }' "$TMP/m.out")"
	done
}

for kind in $COPY_KINDS; do
	echo "== copying, $MIB MiB, $kind-bound tenant"
	tenant_start "$MIB" "$kind"
	for rate in $COPY_RATES; do
		run_path copy "$MIB" "$rate"
	done
	if [ "$kind" = launch ] && [[ " $SHARE_MIB " == *" $MIB "* ]]; then
		echo "== sharing, $MIB MiB (the same tenant)"
		run_path share "$MIB"
	fi
	tenant_end
done
for m in $SHARE_MIB; do
	[ "$m" = "$MIB" ] && continue
	echo "== sharing, $m MiB"
	tenant_start "$m"
	run_path share "$m"
	tenant_end
done
for m in $NATIVE_MIB; do
	echo "== NVIDIA process checkpoint + restore, $m MiB"
	out=$("$PWD/$O/bench/ckpt_native" "$m") || rc_all=1
	echo "$out"
	ck=$(echo "$out" | awk '$2 == "ckpt_checkpoint_ms" { print $3 }')
	rs=$(echo "$out" | awk '$2 == "ckpt_restore_ms" { print $3 }')
	for p in copy share; do
		[ -n "${PAUSE[$p-$m]:-}" ] && [ -n "$ck" ] && [ -n "$rs" ] &&
		for x in ${PAUSE[$p-$m]}; do
			awk -v p="$p" -v m="$m" -v x="$x" -v c="$ck" -v r="$rs" 'BEGIN {
				printf "ratio: NVIDIA checkpoint + restore %.0f ms / %s pause %.2f ms at %d MiB = %.0fx\n",
					c + r, p, x, m, (c + r) / x }'
		done
	done
done
echo "== the source workers' own account of each pause"
grep -h ": migrated in " "$TMP"/*.log 2>/dev/null | sed 's/^.*\(tenant [0-9]*: migrated in\)/\1/'
exit $rc_all
