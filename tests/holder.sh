# SPDX-License-Identifier: MIT
# The "holder" section of tests/run.sh (sourced by it; uses its helpers):
# a stopped tenant whose daemon is gone stays idle (issue 15, point 11).
# A counting tenant (cu_pagecount) is started through a daemon of this
# section, checkpointed with --stop (its worker becomes a holder), and the
# daemon is killed with SIGKILL. Over HOLDER_S seconds (default 5) the
# holder and the waiting program must each use under 2 % of a core
# (utime + stime from /proc/PID/stat) and wake rarely (voluntary context
# switches of all their threads: the holder at most 2 a second, the
# program at most 12; a holder that polled its socket every 100 ms and
# program threads that woke every 50 ms made 11 and 21 here, now 1 and
# 4-8). Then
# the daemon is started again: it adopts the holder, the image restores,
# and the tenant ends with every page right.

HOLDER_S=${HOLDER_S:-5}

# CPU ticks (utime + stime) and voluntary context switches of all of
# pid's threads: "TICKS SWITCHES".
hd_usage() {
	local t s
	t=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }')
	s=$(cat /proc/"$1"/task/*/status 2>/dev/null |
		awk '/^voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }')
	echo "${t:-0} ${s:-0}"
}

# hd_check NAME T0 T1 MAX_WAKEUPS_PER_S: PASS when under 2 % of a core
# and at most that many wakeups a second between the two samples.
hd_check() {
	local name=$1 max=$4 hz ticks wakes pct
	hz=$(getconf CLK_TCK)
	read -r t0 s0 <<< "$2"
	read -r t1 s1 <<< "$3"
	ticks=$((t1 - t0))
	wakes=$((s1 - s0))
	pct=$(awk -v t="$ticks" -v hz="$hz" -v s="$HOLDER_S" 'BEGIN { printf "%.2f", 100 * t / hz / s }')
	if awk -v p="$pct" 'BEGIN { exit !(p < 2) }' &&
	   [ "$wakes" -le $((max * HOLDER_S)) ]; then
		result PASS "holder:$name" "$pct % of a core, $wakes wakeups in $HOLDER_S s"
	else
		result FAIL "holder:$name" "$pct % of a core (limit 2), $wakes wakeups in $HOLDER_S s (limit $((max * HOLDER_S)))"
	fi
}

hd_ps_state() {
	timeout 10 "$BIN/cuvisor" ps --socket "$1" 2>/dev/null |
		awk -v id="$2" '$1 == id { print $5 }'
}

run_holder() {
	local dir sock log cli gpid id wpid img u0 u1 g0 g1 rc i st dpid
	if ! have_cuvisor; then
		result SKIP holder "cuvisor is not built"
		return
	fi
	dir=$(mktemp -d /tmp/cvt-holder.XXXXXX) || return
	sock=$dir/d.sock
	log=$LOGS/holder-tenant.log
	img=$dir/t.img
	hd_daemon() {
		"$BIN/cuvisord" --socket "$sock" --backend "$BACKEND" \
			--spare-workers 0 --log "info:$LOGS/holder-d.log" \
			> "$LOGS/holder-d.out" 2>&1 &
		dpid=$!
		BGPIDS+=("$dpid")
		for i in $(seq 1 200); do
			timeout 10 "$BIN/cuvisor" ps --socket "$sock" > /dev/null 2>&1 && return 0
			alive "$dpid" || return 1
			sleep 0.05
		done
		return 1
	}
	if ! hd_daemon; then
		result FAIL holder:daemon-start "cuvisord did not answer" "$LOGS/holder-d.log"
		rm -rf "$dir"
		return
	fi
	timeout 300 "$BIN/cuvisor" run --socket "$sock" --mem 256M -- \
		"$TB/cu_pagecount" -t 0 -m 16 -v 4 > "$log" 2>&1 &
	cli=$!
	BGPIDS+=("$cli")
	if ! wait_line "$log" '^# ready' 60; then
		result FAIL holder:start "the tenant did not start" "$log"
		kill -KILL "$dpid" 2>/dev/null
		rm -rf "$dir"
		return
	fi
	gpid=$(field "$log" guest_pid)
	id=$(timeout 10 "$BIN/cuvisor" ps --socket "$sock" | awk -v p="$gpid" '$2 == p { print $1 }')
	if ! timeout 120 "$BIN/cuvisor" checkpoint "$id" --stop -o "$img" \
		--socket "$sock" > "$LOGS/holder-ckpt.out" 2>&1; then
		result FAIL holder:checkpoint-stop "cuvisor checkpoint failed" "$LOGS/holder-ckpt.out"
		[ "${gpid:-0}" -gt 0 ] && kill -KILL "$gpid" 2>/dev/null
		kill -KILL "$dpid" 2>/dev/null
		rm -rf "$dir"
		return
	fi
	# the holder: the worker, exec'ed (same pid)
	wpid=$(field "$log" worker_pid)
	kill -KILL "$dpid"
	wait "$dpid" 2>/dev/null
	# settle: the holder sees the daemon gone; the program's waits are long
	wait_line "$LOGS/holder-d.log" "tenant $id: the daemon went away" 10
	sleep 1.5
	if [ -z "$wpid" ] || ! alive "$wpid" || ! alive "$gpid"; then
		result FAIL holder:alive "holder '$wpid' or program $gpid gone" "$LOGS/holder-d.log"
	else
		u0=$(hd_usage "$wpid")
		g0=$(hd_usage "$gpid")
		sleep "$HOLDER_S"
		u1=$(hd_usage "$wpid")
		g1=$(hd_usage "$gpid")
		hd_check idle-holder-without-daemon "$u0" "$u1" 2
		hd_check program-waiting "$g0" "$g1" 12
	fi
	# the daemon again: the holder is adopted, the image restores
	if ! hd_daemon; then
		result FAIL holder:daemon-restart "cuvisord did not answer" "$LOGS/holder-d.log"
	else
		st=
		for i in $(seq 1 100); do
			st=$(hd_ps_state "$sock" "$id")
			[ "$st" = stopped ] && break
			sleep 0.1
		done
		if [ "$st" = stopped ]; then
			result PASS holder:adopted "tenant $id stopped"
		else
			result FAIL holder:adopted "ps says '$st'" "$LOGS/holder-d.log"
		fi
		if timeout 120 "$BIN/cuvisor" restore "$img" --socket "$sock" \
			> "$LOGS/holder-restore.out" 2>&1; then
			result PASS holder:restored "$(head -n 1 "$LOGS/holder-restore.out" | cut -c1-120)"
		else
			result FAIL holder:restored "restore failed" "$LOGS/holder-restore.out"
		fi
	fi
	[ "${gpid:-0}" -gt 0 ] && kill -TERM "$gpid" 2>/dev/null
	wait "$cli" 2>/dev/null
	rc=$?
	if [ $rc = 0 ]; then
		result PASS holder:tenant-checks "every page right"
	else
		result FAIL holder:tenant-checks "exit $rc" "$log"
	fi
	timeout 20 "$BIN/cuvisor" shutdown --socket "$sock" > /dev/null 2>&1
	for i in $(seq 1 200); do
		alive "$dpid" || break
		sleep 0.05
	done
	alive "$dpid" && kill -KILL "$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	rm -rf "$dir"
}
