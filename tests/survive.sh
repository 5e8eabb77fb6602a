# SPDX-License-Identifier: MIT
# The "crowd" and "survive" sections of tests/run.sh (sourced by it; uses
# its helpers).
#
# crowd: CROWD_N (default 40) small counting tenants started at once
# through one daemon on this machine; every one must finish with every
# page right. A loaded machine makes the guests' long waits ask their
# workers whether they stalled, and an honest worker must never be taken
# for a corrupted region.

CROWD_N=${CROWD_N:-40}

run_crowd() {
	local i rc ok=0 lost=0 failed= t0 pids=() log
	if ! have_cuvisor || [ ! -x "$TB/cu_pagecount" ]; then
		result SKIP crowd "cuvisor or cu_pagecount is not built"
		return
	fi
	if ! start_daemon; then
		result FAIL crowd:daemon-start "cuvisord did not answer" "$DLOG"
		return
	fi
	t0=$(now_ms)
	for i in $(seq 1 "$CROWD_N"); do
		CUVISOR_LOG=warn timeout 600 "$BIN/cuvisor" run --socket "$SOCK" \
			--mem 32M -- "$TB/cu_pagecount" -t 5 -m 8 \
			> "$LOGS/crowd-$i.log" 2>&1 &
		pids+=("$!")
		BGPIDS+=("$!")
	done
	for i in $(seq 1 "$CROWD_N"); do
		wait "${pids[$((i - 1))]}"
		rc=$?
		log=$LOGS/crowd-$i.log
		if grep -q "shared region was overwritten" "$log"; then
			lost=$((lost + 1))
		fi
		if [ $rc = 0 ]; then
			ok=$((ok + 1))
		elif [ -z "$failed" ]; then
			failed=$log
		fi
	done
	if [ $ok = "$CROWD_N" ] && [ $lost = 0 ]; then
		result PASS crowd:all-finish "$CROWD_N tenants at once, all right, $(( $(now_ms) - t0 )) ms"
	else
		result FAIL crowd:all-finish "$ok of $CROWD_N finished right, $lost taken for corrupted" "$failed"
	fi
	if daemon_answers; then
		result PASS crowd:daemon-answers
	else
		result FAIL crowd:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
	stop_daemon
}
