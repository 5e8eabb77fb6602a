#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Suspend, resume, evict and resume a tenant holding SIZES (MiB, default
# "1024 8192") of device memory that it keeps updating (cu_pagecount), on
# the cuda backend, then checkpoint it to an image file with --stop and
# restore it (twice), and print what each operation took. The tenant
# checks every page after each operation; its exit status says whether
# all were right. Then, for each size, NVIDIA's own stop-the-world process
# checkpoint of a native process holding the same memory (ckpt_native).
# Images go to IMGDIR (default /dev/shm: memory, as NVIDIA's checkpoint
# keeps its copy in host memory too). The tenant checks every page after
# every VERIFY_EVERY rounds (default 64: a check of 32 GiB takes seconds)
# and once more at its end.
#
#   make all test-programs && bench/ops_run.sh [SIZES...]
set -u
cd "$(dirname "$0")/.." || exit 2
O=${O:-build}
BIN=$PWD/$O/bin
SIZES=${*:-1024 8192}
IMGDIR=${IMGDIR:-/dev/shm}
if ! nvidia-smi -L > /dev/null 2>&1; then
	echo "SKIP ops bench: no NVIDIA GPU"
	exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-ops.XXXXXX") || exit 2
SOCK=$TMP/s
"$BIN/cuvisord" --socket "$SOCK" --backend cuda --log info:"$TMP/d.log" &
DPID=$!
trap 'kill $DPID 2>/dev/null; rm -rf "$TMP"' EXIT
for i in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
rc_all=0
for mib in $SIZES; do
	log=$TMP/t$mib.log
	"$BIN/cuvisor" run --socket "$SOCK" -- "$PWD/$O/tests/cu_pagecount" \
		-m "$mib" -t 0 -v "${VERIFY_EVERY:-64}" > "$log" 2>&1 &
	cli=$!
	for i in $(seq 600); do grep -q '^# ready' "$log" && break; sleep 0.1; done
	id=$("$BIN/cuvisor" ps --socket "$SOCK" | awk 'NR > 1 { print $1 }' | tail -1)
	echo "== $mib MiB (tenant $id)"
	for op in suspend resume evict resume suspend resume evict resume; do
		"$BIN/cuvisor" $op "$id" --socket "$SOCK"
		sleep 0.3
	done
	for round in 1 2; do
		img=$IMGDIR/cuvisor-bench-$$.img
		"$BIN/cuvisor" checkpoint "$id" -o "$img" --stop --socket "$SOCK"
		"$BIN/cuvisor" restore "$img" --socket "$SOCK"
		rm -f "$img"
		sleep 0.5
	done
	grep -E "restored [0-9]+ bytes" "$TMP/d.log" | tail -2 |
		sed 's/^.*info: /worker: /'
	pid=$(awk '/^# guest_pid/ { print $3 }' "$log")
	kill -TERM "$pid" 2>/dev/null
	wait "$cli"
	rc=$?
	echo "tenant exit $rc; $(grep -E '^# rounds' "$log" | tail -1)"
	[ $rc = 0 ] || { rc_all=1; tail -5 "$log"; }
done
for mib in $SIZES; do
	echo "== NVIDIA process checkpoint, $mib MiB"
	"$PWD/$O/bench/ckpt_native" "$mib" || rc_all=1
done
exit $rc_all
