#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Live migration between two hosts' daemons, here two daemons of one
# machine over loopback TCP (docs/remote.md): a tenant on A's GPU moves to
# B's (`cuvisor migrate --to`), runs there, and comes back (`--gpu 0`).
# The tenant is cu_pagecount, which checks after every few rounds that
# every page was counted exactly once per round (the A-B test), and at
# its end.
#
#   bench/remote_mig.sh [MIB [HOT_MIB [ARGS...]]]
#
# MIB (default 16384) of device memory, HOT_MIB (default 256) of it
# rewritten every round (cu_pagecount -H HOT -W, or ARGS instead of -W).
# Prints both migrations' results (pause, total) and the tenant's end;
# the workers' logs go to $OUT when set. Backend: cuda with a GPU, else
# host. MIGRATE_ARGS: more arguments of both migrations (--compress).
set -u
cd "$(dirname "$0")/.." || exit 2
O=${O:-build}
BIN=$PWD/$O/bin
TB=$PWD/$O/tests
MIB=${1:-16384}
HOT=${2:-256}
shift $(($# < 2 ? $# : 2))
[ $# = 0 ] && set -- -W
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-rmig.XXXXXX") || exit 2
backend=host
if nvidia-smi -L > /dev/null 2>&1; then
	backend=cuda
	unset CUVISOR_HOST_KERNELS
else
	export CUVISOR_HOST_KERNELS=$TB/libtestkernels.so
fi
# shellcheck source=bench/remote_daemons.sh
. bench/remote_daemons.sh
done_() {
	remote_daemons_stop "$BIN" "$TMP"
	[ -n "${OUT:-}" ] && mkdir -p "$OUT" && cp "$TMP"/*.log "$TMP"/*.out "$OUT/" 2>/dev/null
	rm -rf "$TMP"
}
trap done_ EXIT
remote_daemons "$BIN" "$TMP" "$backend" ||
	{ echo "remote_mig: the daemons did not start"; exit 1; }
port=$REMOTE_PORT
"$BIN/cuvisor" run --socket "$TMP/a.sock" --mem $((MIB + 1024))M -- \
	"$TB/cu_pagecount" -m "$MIB" -H "$HOT" -t 0 -v 1000000 "$@" > "$TMP/tenant.out" 2>&1 &
run=$!
for _ in $(seq 1 600); do
	grep -q "# ready" "$TMP/tenant.out" && break
	sleep 0.1
done
gpid=$(awk '$2 == "guest_pid" { print $3; exit }' "$TMP/tenant.out")
id=$("$BIN/cuvisor" ps --socket "$TMP/a.sock" | awk -v p="$gpid" '$2 == p { print $1 }')
rounds() { awk '$2 == "rounds" { n = $3 } END { print n + 0 }' "$TMP/tenant.out"; }
echo "# $backend backend; tenant $id: $MIB MiB, hot set $HOT MiB ($*); B on 127.0.0.1:$port"
sleep 2
# shellcheck disable=SC2086 # words on purpose
echo "to B:    $("$BIN/cuvisor" migrate "$id" --socket "$TMP/a.sock" --to "127.0.0.1:$port" ${MIGRATE_ARGS:-} 2>&1)"
"$BIN/cuvisor" ps --socket "$TMP/a.sock" | sed 's/^/  A: /'
"$BIN/cuvisor" ps --socket "$TMP/b.sock" | sed 's/^/  B: /'
r0=$(rounds)
sleep 3
echo "rounds on B's GPU in 3 s: $(($(rounds) - r0))"
# shellcheck disable=SC2086
echo "back:    $("$BIN/cuvisor" migrate "$id" --socket "$TMP/a.sock" --gpu 0 ${MIGRATE_ARGS:-} 2>&1)"
r0=$(rounds)
sleep 3
echo "rounds on A's GPU in 3 s: $(($(rounds) - r0))"
kill -TERM "$gpid"
wait "$run"
rc=$?
echo "tenant exit $rc: $(grep -E '^# [0-9]+ passed' "$TMP/tenant.out")"
grep -E "migrated in [0-9]+ rounds" "$TMP/a.log" | sed 's/^.*info: /  /'
grep -hE "compressed as" "$TMP/b.log" | sed 's/^.*info: /  B: /'
exit $rc
