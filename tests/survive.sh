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

# survive: the kill matrix. An operation that stops or moves a tenant is
# under way when whoever asked for it (the CLI) or the daemon dies, by
# SIGTERM or SIGKILL; a new daemon is started where the old one died. The
# tenant must end in a state a later command recovers from, and after that
# recovery every page must be right (cu_pagecount's own checks). Each case
# prints one PASS or FAIL line "survive:OP:WHO-SIG" with what it saw.

SV_MIB=${SV_MIB:-256}
SV_ID=
SV_CLI=
SV_GPID=
SV_CASE=
SV_WHY=

# sv_state ID: the STATE column of `cuvisor ps` for tenant ID ("" if none).
sv_state() { ops_state "$1"; }

# sv_wait_state ID REGEX SECONDS: true once `cuvisor ps` says a state
# matching REGEX (anchored); SV_STATE is the last state seen.
SV_STATE=
sv_wait_state() {
	local end=$(( $(now_ms) + $3 * 1000 ))
	while :; do
		SV_STATE=$(sv_state "$1")
		[[ $SV_STATE =~ ^($2)$ ]] && return 0
		[ "$(now_ms)" -lt $end ] || break
		sleep 0.1
	done
	SV_WHY="tenant $1 is '$SV_STATE' after $3 s, not $2"
	return 1
}

# sv_gpu_of PID: the GPU column of the tenants of guest PID, one a line.
sv_gpu_of() {
	timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" 2>/dev/null |
		awk -v p="$1" '$2 == p { print $3 }'
}

# sv_wait_file FILE SECONDS
sv_wait_file() {
	local end=$(( $(now_ms) + $2 * 1000 ))
	until [ -s "$1" ]; do
		if [ "$(now_ms)" -ge $end ]; then
			SV_WHY="no $1 after $2 s"
			return 1
		fi
		sleep 0.1
	done
}

# sv_tenant: a counting tenant of SV_MIB MiB; sets SV_ID, SV_CLI, SV_GPID.
sv_tenant() {
	OPS_LOG=$LOGS/sv-$SV_CASE.log
	timeout 900 "$BIN/cuvisor" run --socket "$SOCK" \
		--mem "$((SV_MIB * 2 + 64))M" -- "$TB/cu_pagecount" -t 0 \
		-m "$SV_MIB" -v 4 $SV_ARGS > "$OPS_LOG" 2>&1 &
	SV_CLI=$!
	BGPIDS+=("$SV_CLI")
	if ! wait_line "$OPS_LOG" '^# ready' 120; then
		SV_WHY="the tenant did not start counting"
		return 1
	fi
	SV_GPID=$(field "$OPS_LOG" guest_pid)
	SV_ID=$(timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" 2>/dev/null |
		awk -v p="$SV_GPID" '$2 == p { print $1 }')
	[ -n "$SV_ID" ] || SV_WHY="cuvisor ps lists no tenant of pid $SV_GPID"
	[ -n "$SV_ID" ]
}

# sv_kill WHO SIG OPPID: kills the operation's CLI, or the daemon (and
# starts a new one at the same socket, which adopts the workers).
sv_kill() {
	local who=$1 sig=$2 op=$3
	if [ "$who" = cli ]; then
		kill -"$sig" "$op" 2>/dev/null
		wait "$op" 2>/dev/null
		return 0
	fi
	kill -"$sig" "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
	wait "$op" 2>/dev/null
	start_daemon || { SV_WHY="the new daemon did not answer"; return 1; }
}

# sv_end: the tenant runs again and ends with every page right.
sv_end() {
	local rc
	if ! ops_moves; then
		SV_WHY="no progress after recovery: $OPS_DETAIL"
		kill -KILL "$SV_GPID" 2>/dev/null
		wait "$SV_CLI" 2>/dev/null
		return 1
	fi
	kill -TERM "$SV_GPID" 2>/dev/null
	wait "$SV_CLI" 2>/dev/null
	rc=$?
	if [ $rc != 0 ]; then
		SV_WHY="the tenant's checks failed (exit $rc)"
		return 1
	fi
	# Its program ended: no record of it is left behind.
	sv_wait_state "$SV_ID" "" 30 ||
		SV_WHY="after its program ended, $SV_WHY"
}

# sv_begin OP ARGS...: starts `cuvisor OP ID ARGS` in the background once
# the daemon logged that it took it; its pid in SV_OP.
SV_OP=
sv_begin() {
	local op=$1 from end=$(( $(now_ms) + 30000 ))
	shift
	from=$(( $(stat -c %s "$DLOG" 2>/dev/null || echo 0) + 1 ))
	# No `timeout` in between: the kill must reach the CLI itself (the
	# waits below have deadlines; cleanup kills what is left).
	"$BIN/cuvisor" "$op" "$SV_ID" "$@" --socket "$SOCK" \
		> "$LOGS/sv-$SV_CASE.out" 2>&1 &
	SV_OP=$!
	BGPIDS+=("$SV_OP")
	while [ "$(now_ms)" -lt $end ]; do
		tail -c +"$from" "$DLOG" 2>/dev/null |
			grep -qE "tenant $SV_ID: ($op|moving|migrat).* asked by" &&
			return 0
		sleep 0.05
	done
	SV_WHY="the daemon never logged the $op"
	return 1
}

# sv_recover VERB ARG: `cuvisor VERB ARG` brings the tenant back; it
# must then run.
sv_recover() {
	local out=$LOGS/sv-$SV_CASE.$1
	if ! timeout 300 "$BIN/cuvisor" "$1" "$2" --socket "$SOCK" \
		> "$out" 2>&1; then
		SV_WHY="$1 failed: $(head -n 1 "$out")"
		return 1
	fi
	sv_wait_state "$SV_ID" running 30
}

# checkpoint --stop: the image appears, the tenant is stopped, restore.
# Compressed (zstd 3: seconds for 256 MiB here), so that the kill comes
# while the image is written; the detail says if it came after.
sv_checkpoint() {
	local who=$1 sig=$2 img=$LOGS/sv-$1-$2.img
	sv_begin checkpoint -o "$img" --stop --compress 3 || return 1
	[ -e "$img" ] && SV_DETAIL="(the image was named before the kill)"
	sv_kill "$who" "$sig" "$SV_OP" || return 1
	sv_wait_file "$img" 180 || return 1
	sv_wait_state "$SV_ID" stopped 60 || return 1
	sv_recover restore "$img"
}

# evict: the tenant ends evicted, then resume.
sv_evict() {
	sv_begin evict || return 1
	sv_kill "$1" "$2" "$SV_OP" || return 1
	sv_wait_state "$SV_ID" evicted 60 || return 1
	sv_recover resume "$SV_ID"
}

# resume --gpu 1 of a suspended tenant (a move through an image in
# memory): it ends running (on gpu 1), or stopped with its image kept,
# and then `resume` brings it back.
sv_move() {
	local who=$1 sig=$2
	if ! timeout 60 "$BIN/cuvisor" suspend "$SV_ID" --socket "$SOCK" \
		> /dev/null 2>&1; then
		SV_WHY="suspend failed"
		return 1
	fi
	local end=$(( $(now_ms) + 120000 )) out=$LOGS/sv-$SV_CASE.resume
	sv_begin resume --gpu "$SV_TO" || return 1
	sv_kill "$who" "$sig" "$SV_OP" || return 1
	# Stopped is also the state between the move's two halves: a
	# resume then says busy, and is asked again.
	while :; do
		sv_wait_state "$SV_ID" "running|stopped" 60 || return 1
		if [ "$SV_STATE" = running ]; then
			SV_DETAIL="on gpu $(sv_gpu_of "$SV_GPID")"
			return 0
		fi
		if timeout 300 "$BIN/cuvisor" resume "$SV_ID" --socket "$SOCK" \
			> "$out" 2>&1; then
			SV_DETAIL="stopped with its image kept, resumed"
			sv_wait_state "$SV_ID" running 30
			return
		fi
		if ! grep -q busy "$out" || [ "$(now_ms)" -ge $end ]; then
			SV_WHY="stopped, then resume failed: $(head -n 1 "$out")"
			return 1
		fi
		sleep 0.2
	done
}

# A live migration to the other GPU (SV_TO; with one GPU, to a second
# worker on it, copying), paced so that it is in its rounds
# when the kill comes (the tenant's hot set is small: the rounds
# converge). Killing the CLI or SIGKILL of the daemon must not stop it:
# it ends on gpu 1 (the new daemon adopts the source and, once it
# committed, the destination, never both). A daemon stopped by SIGTERM
# calls its migrations off: the tenant then runs on on gpu 0. Either way
# it is listed once, running.
sv_migrate() {
	local who=$1 sig=$2 want=$SV_TO g end=$(( $(now_ms) + 120000 ))
	[ "$who-$sig" = daemon-TERM ] && want="0|$SV_TO"
	sv_begin migrate --gpu "$SV_TO" --copy --max-rate 100 || return 1
	sv_kill "$who" "$sig" "$SV_OP" || return 1
	while :; do
		g=$(sv_gpu_of "$SV_GPID" | tr '\n' ' ')
		[[ $g =~ ^($want)\ $ ]] &&
			[ "$(sv_state "$SV_ID")" = running ] && break
		if [ "$(now_ms)" -ge $end ]; then
			SV_WHY="after 120 s, cuvisor ps lists tenants of pid $SV_GPID on gpus '$g', not one on $want"
			return 1
		fi
		sleep 0.1
	done
	SV_DETAIL="on gpu ${g% }"
}

# sv_case OP WHO SIG
SV_DETAIL=
sv_case() {
	local op=$1 who=$2 sig=$3
	SV_CASE=$op-$who-$sig SV_WHY= SV_DETAIL= SV_ARGS=
	[ "$op" = migrate ] && SV_ARGS="-H 16"
	if sv_tenant && "sv_$op" "$who" "$sig" && sv_end; then
		result PASS "survive:$op:$who-$sig" "recovered${SV_DETAIL:+ $SV_DETAIL}, every page right"
	else
		result FAIL "survive:$op:$who-$sig" "$SV_WHY" "$DLOG"
		[ -n "$SV_GPID" ] && kill -KILL "$SV_GPID" 2>/dev/null
		wait "$SV_CLI" 2>/dev/null
	fi
	SV_GPID=
}

# The number of GPUs the shared daemon has.
sv_ngpus() {
	timeout 10 "$BIN/cuvisor" info --socket "$SOCK" 2>/dev/null |
		awk 'f && NF { n++ } /^GPU / { f = 1 } END { print n + 0 }'
}

SV_TO=1
run_survive() {
	local op who sig
	if ! have_cuvisor || [ ! -x "$TB/cu_pagecount" ]; then
		result SKIP survive "cuvisor or cu_pagecount is not built"
		return
	fi
	[ "$BACKEND" = host ] && export CUVISOR_HOST_GPUS=2
	if ! start_daemon; then
		result FAIL survive:daemon-start "cuvisord did not answer" "$DLOG"
		return
	fi
	SV_TO=1
	[ "$(sv_ngpus)" -ge 2 ] || SV_TO=0
	for op in ${SV_OPS:-checkpoint evict move migrate}; do
		if [ "$op" = move ] && [ $SV_TO = 0 ]; then
			result SKIP survive:move "one GPU: no other GPU to move to"
			continue
		fi
		for who in cli daemon; do
			for sig in TERM KILL; do
				sv_case "$op" "$who" "$sig"
			done
		done
	done
	stop_daemon
	unset CUVISOR_HOST_GPUS
	sv_pidfile
}

# An overlapping restart: daemon B starts (and writes the pidfile) before
# daemon A has stopped; A's exit must leave B's pidfile alone.
sv_pidfile() {
	local pf=$LOGS/sv.pid a b i
	"$BIN/cuvisord" --socket "$LOGS/sv-a.sock" --backend "$BACKEND" \
		--spare-workers 0 --pidfile "$pf" --log "info:$LOGS/sv-a.log" \
		> /dev/null 2>&1 &
	a=$!
	BGPIDS+=("$a")
	wait_line "$pf" "^$a\$" 30 || true
	"$BIN/cuvisord" --socket "$LOGS/sv-b.sock" --backend "$BACKEND" \
		--spare-workers 0 --pidfile "$pf" --log "info:$LOGS/sv-b.log" \
		> /dev/null 2>&1 &
	b=$!
	BGPIDS+=("$b")
	if ! wait_line "$pf" "^$b\$" 30; then
		result FAIL survive:pidfile-overlap "daemon B never wrote its pid" "$LOGS/sv-b.log"
		kill -KILL "$a" "$b" 2>/dev/null
		return
	fi
	kill -TERM "$a"
	wait "$a" 2>/dev/null
	if [ "$(cat "$pf" 2>/dev/null)" = "$b" ]; then
		result PASS survive:pidfile-overlap "the old daemon left the new one's pidfile"
	else
		result FAIL survive:pidfile-overlap "pidfile after A's exit: '$(cat "$pf" 2>/dev/null)', want $b" "$LOGS/sv-a.log"
	fi
	kill -TERM "$b"
	wait "$b" 2>/dev/null
	for i in $(seq 1 50); do [ -e "$pf" ] || break; sleep 0.1; done
	if [ -e "$pf" ]; then
		result FAIL survive:pidfile-removed "B left its pidfile behind"
	else
		result PASS survive:pidfile-removed
	fi
}
