# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The "netns" section of tests/run.sh (sourced by it; uses its helpers):
# the TCP link between two hosts' daemons (core/peer.h, docs/remote.md)
# over a real interface: two daemons in two network namespaces of this
# machine, joined by a veth pair that the section creates and removes.
# Needs root and `ip netns`; skipped otherwise.
#
#   netns:setup        the namespaces, the veth pair (10.77.X.1 and .2/24)
#                      and a daemon listening in each
#   netns:peer-ab      `cuvisor peer` from A to B and from B to A:
#                      authenticated, and each daemon logged the other's
#                      veth address
#   netns:isolated     from this machine's own namespace B cannot be
#                      reached, and neither veth end is seen there
#   netns:wrong-key    from A with another key: exit 1, "does not hold our
#                      key", and B logged the refusal
#   netns:link-down    A's veth end set down: `cuvisor peer` from A to B
#                      fails within 15 s (the time is reported)
#   netns:link-up      set up again: `cuvisor peer` from A to B works again
#   netns:remote-run   programs in A on a vGPU of B's GPU (`cuvisor run
#                      --host B`): cu_copy, cu_module, cu_memset,
#                      cu_pagecount pass; B logged the vGPU it served
#   netns:remote-cut   A's veth end set down under a running remote
#                      tenant: its next synchronising call fails with
#                      CUDA_ERROR_DEVICE_UNAVAILABLE within the
#                      --remote-timeout (3 s) plus slack, and B's
#                      serving worker ends (silence or A's close)
#   netns:remote-key   A's daemon with another key: the program fails at
#                      cuInit with a clear error, B logged the refusal
#   netns:remote-migrate  the A-B test across hosts: cu_pagecount on A's
#                      GPU migrated live to B's (`migrate --to`), then
#                      back (`migrate --gpu 0`); `cuvisor ps` on A and B
#                      say where its vGPU is each time; its rounds go on
#                      and its final check (every page counted once per
#                      round) passes
#   netns:remote-migrate-cut  A's veth end set down during a migration to
#                      B (paced so that it is in pre-copy): the migration
#                      fails, the tenant runs on on A and its final check
#                      passes
#
# Helpers for other tests between two hosts (remote vGPUs):
#   netns_setup [NAME]   namespaces, veth pair, key and both daemons; sets
#                        NS_A NS_B IP_A IP_B VETH_A VETH_B SOCK_A SOCK_B
#                        LOG_A LOG_B KEY PID_A PID_B NETNS_DIR. 0, or 1
#                        after reporting SKIP NAME or FAIL NAME:setup
#                        (NAME: default netns) and cleaning up
#   netns_cleanup        daemons and whatever else runs in the namespaces
#                        killed, namespaces and veth pair deleted; safe to
#                        call twice, and run.sh's EXIT trap calls it too
#   netns_exec_a CMD...  CMD inside namespace A (netns_exec_b: B)
#   netns_daemon A|B [ARG...]  (re)starts that daemon with the extra ARGs
#   netns_stop A|B       stops that daemon
#   netns_peer FROM TO [KEYFILE]  `cuvisor peer` from FROM's namespace to
#                        TO's daemon; its output and status
#   NETNS_DAEMON_ARGS    an array of extra cuvisord arguments for both
#                        daemons (set it before netns_setup)

NETNS_PORT=7430
NETNS_DAEMON_ARGS=()
NS_A='' NS_B='' VETH_A='' VETH_B='' PID_A='' PID_B=''
# Loopback mode (netns_setup_loop): no namespaces, both daemons on
# 127.0.0.1, each on a port the kernel chose; NETNS_PORT is B's.
NETNS_LOOP=0
NETNS_SEC=netns     # the remote tests' results' prefix: netns or rloop

# netns_exec_a CMD [ARG...]: runs CMD in namespace A; its status.
netns_exec_a() {
	if [ "$NETNS_LOOP" = 1 ]; then "$@"; else ip netns exec "$NS_A" "$@"; fi
}

# netns_exec_b CMD [ARG...]: runs CMD in namespace B; its status.
netns_exec_b() {
	if [ "$NETNS_LOOP" = 1 ]; then "$@"; else ip netns exec "$NS_B" "$@"; fi
}

# netns_daemon A|B [ARG...]: (re)starts the daemon of namespace A or B on
# SOCK_x, LOG_x (emptied first) and IP_x:7430 with KEY, then
# NETNS_DAEMON_ARGS and ARGs. Its pid goes to PID_x and BGPIDS (`ip netns
# exec` execs, so that is the daemon itself). 0 once its log says it
# listens, 1 when it does not within 10 s (its log says why).
netns_daemon() {
	local w=$1 ip sock log pid port=$NETNS_PORT pre _
	shift
	case $w in
	A) ip=$IP_A sock=$SOCK_A log=$LOG_A pre=(ip netns exec "$NS_A") ;;
	B) ip=$IP_B sock=$SOCK_B log=$LOG_B pre=(ip netns exec "$NS_B") ;;
	*) return 2 ;;
	esac
	# `ip netns exec` execs: $! is the daemon's pid either way
	if [ "$NETNS_LOOP" = 1 ]; then
		pre=()
		port=0
	fi
	netns_stop "$w"
	rm -f "$sock"
	# a restarted daemon's log goes on in a new file; the old one stays
	[ -s "$log" ] && mv "$log" "${log%.log}.$(date +%s%N).log"
	: > "$log"
	${pre[@]+"${pre[@]}"} "$BIN/cuvisord" --socket "$sock" --backend "$BACKEND" \
		--spare-workers 0 --peer-listen "$ip:$port" --peer-key "$KEY" \
		--log "info:$log" ${NETNS_DAEMON_ARGS[@]+"${NETNS_DAEMON_ARGS[@]}"} \
		"$@" > "${log%.log}.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	printf -v "PID_$w" %s "$pid"
	netns_listens() {
		grep -q "peer link: listening" "$log" 2>/dev/null ||
			{ alive "$pid" || return 0; return 1; }
	}
	wait_for "$WAIT_S" netns_listens &&
		grep -q "peer link: listening" "$log" 2>/dev/null || return 1
	# on loopback B listens on a port the kernel chose (port 0): two
	# runs on one machine never collide
	if [ "$NETNS_LOOP" = 1 ] && [ "$w" = B ]; then
		NETNS_PORT=$(sed -n 's/.*peer link: listening on .* (port \([0-9]*\)).*/\1/p' "$log" | head -n 1)
		[ -n "$NETNS_PORT" ] || return 1
	fi
	return 0
}

# netns_stop A|B: SIGTERM to that daemon, SIGKILL after 5 s; reaped.
netns_stop() {
	local pid _
	case $1 in A) pid=$PID_A ;; B) pid=$PID_B ;; *) return 2 ;; esac
	[ -n "$pid" ] || return 0
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 50); do
			alive "$pid" || break
			sleep 0.1
		done
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	printf -v "PID_$1" %s ""
}

# netns_cleanup: the daemons stopped, every process left in our
# namespaces (workers, a hung client) killed, the namespaces deleted,
# which deletes the veth pair in them; a veth end still in this namespace
# (setup stopped half way) deleted too. Touches only this run's names.
netns_cleanup() {
	local ns p
	netns_stop A
	netns_stop B
	for ns in ${NS_A:+"$NS_A"} ${NS_B:+"$NS_B"}; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		ip netns delete "$ns" 2>/dev/null
	done
	for p in ${VETH_A:+"$VETH_A"} ${VETH_B:+"$VETH_B"}; do
		ip link show "$p" > /dev/null 2>&1 && ip link delete "$p" 2>/dev/null
	done
	NS_A='' NS_B='' VETH_A='' VETH_B=''
	return 0
}

# netns_link_wait NS DEV: 0 once DEV in NS has a carrier, 1 if it has
# none after WAIT_S.
netns_link_wait() {
	netns_carrier() { ip -n "$1" link show "$2" 2>/dev/null | grep -q LOWER_UP; }
	wait_for "$WAIT_S" netns_carrier "$1" "$2"
}

# netns_link: the veth pair, born in the two namespaces (never in ours),
# addressed and up, with lo up in each; prints what failed.
netns_link() {
	ip link add "$VETH_A" netns "$NS_A" type veth \
		peer name "$VETH_B" netns "$NS_B" &&
	ip -n "$NS_A" addr add "$IP_A/24" dev "$VETH_A" &&
	ip -n "$NS_B" addr add "$IP_B/24" dev "$VETH_B" &&
	ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
	ip -n "$NS_A" link set "$VETH_A" up &&
	ip -n "$NS_B" link set "$VETH_B" up || return 1
	netns_link_wait "$NS_A" "$VETH_A" && netns_link_wait "$NS_B" "$VETH_B" &&
		return 0
	echo "no carrier on $VETH_A/$VETH_B after $WAIT_S s"
	return 1
}

# netns_names: this run's names, addresses and files (X from our pid).
netns_names() {
	local x=$(($$ % 200))
	NETNS_DIR=$LOGS/netns
	NS_A=cvA$$ NS_B=cvB$$ VETH_A=cvvA$$ VETH_B=cvvB$$
	IP_A=10.77.$x.1 IP_B=10.77.$x.2
	SOCK_A=$NETNS_DIR/a.sock SOCK_B=$NETNS_DIR/b.sock
	LOG_A=$NETNS_DIR/a.log LOG_B=$NETNS_DIR/b.log
	KEY=$NETNS_DIR/key
}

# netns_daemons NAME: both daemons started; 0, or 1 after reporting
# FAIL NAME:setup and cleaning up.
netns_daemons() {
	if ! netns_daemon A; then
		result FAIL "$1:setup" "daemon A does not listen: $(tail -n 1 "${LOG_A%.log}.out")" "$LOG_A"
	elif ! netns_daemon B; then
		result FAIL "$1:setup" "daemon B does not listen: $(tail -n 1 "${LOG_B%.log}.out")" "$LOG_B"
	else
		return 0
	fi
	netns_cleanup
	return 1
}

# netns_setup_loop [NAME]: the two daemons on this machine's loopback,
# as netns_setup but without namespaces (no root needed; the tests that
# cut a link cannot run). 0, or 1 after reporting SKIP or FAIL.
netns_setup_loop() {
	local name=${1:-rloop}
	if ! have_cuvisor; then
		result SKIP "$name" "cuvisor is not built"
		return 1
	fi
	netns_names
	NETNS_LOOP=1 NS_A='' NS_B='' IP_A=127.0.0.1 IP_B=127.0.0.1
	NETNS_PORT=0  # B's, once it listens (netns_daemon)
	trap 'netns_cleanup; cleanup' EXIT
	mkdir -p "$NETNS_DIR"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$KEY"
	chmod 600 "$KEY"
	netns_daemons "$name"
}

# netns_setup [NAME]: see the top of this file.
netns_setup() {
	local name=${1:-netns} out
	if [ "$(id -u)" != 0 ]; then
		result SKIP "$name" "needs root for network namespaces"
		return 1
	fi
	if ! ip netns list > /dev/null 2>&1; then
		result SKIP "$name" "no \`ip netns\` (iproute2)"
		return 1
	fi
	if ! have_cuvisor; then
		result SKIP "$name" "cuvisor is not built"
		return 1
	fi
	netns_names
	# run.sh's own EXIT trap is `cleanup`: ours goes first
	trap 'netns_cleanup; cleanup' EXIT
	mkdir -p "$NETNS_DIR"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$KEY"
	chmod 600 "$KEY"
	# a namespace of a dead run that had our pid
	ip netns delete "$NS_A" 2>/dev/null
	ip netns delete "$NS_B" 2>/dev/null
	if ! out=$(ip netns add "$NS_A" 2>&1 && ip netns add "$NS_B" 2>&1); then
		netns_cleanup
		result SKIP "$name" "cannot make a network namespace: $out"
		return 1
	fi
	if ! out=$(netns_link 2>&1); then
		netns_cleanup
		result FAIL "$name:setup" "veth pair: $out"
		return 1
	fi
	netns_daemons "$name"
}

# netns_peer FROM TO [KEYFILE]: `cuvisor peer` run in FROM's namespace to
# TO's daemon (A or B) with KEYFILE (default KEY), 20 s at most.
netns_peer() {
	local ip
	case $2 in A) ip=$IP_A ;; B) ip=$IP_B ;; *) return 2 ;; esac
	case $1 in
	A) netns_exec_a timeout 20 "$BIN/cuvisor" peer "$ip:$NETNS_PORT" \
		--key "${3:-$KEY}" ;;
	B) netns_exec_b timeout 20 "$BIN/cuvisor" peer "$ip:$NETNS_PORT" \
		--key "${3:-$KEY}" ;;
	*) return 2 ;;
	esac
}

# ---- the tests -----------------------------------------------------------

netns_test_peer_ab() {
	local ab ba rab rba
	ab=$(netns_peer A B 2>&1)
	rab=$?
	ba=$(netns_peer B A 2>&1)
	rba=$?
	if [ $rab = 0 ] && echo "$ab" | grep -q authenticated &&
	   wait_line "$LOG_B" "peer ${IP_A//./\\.}:[0-9]+ .*authenticated" "$WAIT_S"; then
		:
	else
		result FAIL netns:peer-ab "A to B: exit $rab: $ab" "$LOG_B"
		return
	fi
	if [ $rba = 0 ] && echo "$ba" | grep -q authenticated &&
	   wait_line "$LOG_A" "peer ${IP_B//./\\.}:[0-9]+ .*authenticated" "$WAIT_S"; then
		result PASS netns:peer-ab "$(echo "$ab" | head -1); B to A too"
	else
		result FAIL netns:peer-ab "B to A: exit $rba: $ba" "$LOG_A"
	fi
}

# From our namespace the connect may hang (the default route knows no
# 10.77.X.0/24), or something on that route may answer it: a short
# timeout, any failure will do, and B must have seen no one but A.
netns_test_isolated() {
	local out rc seen='' others
	out=$(timeout 5 "$BIN/cuvisor" peer "$IP_B:$NETNS_PORT" --key "$KEY" \
		--timeout 3000 2>&1)
	rc=$?
	ip link show "$VETH_A" > /dev/null 2>&1 && seen=$VETH_A
	ip link show "$VETH_B" > /dev/null 2>&1 && seen="$seen $VETH_B"
	sleep 0.2
	others=$(grep -E "peer [0-9a-f.:[]+[]]?:[0-9]+ " "$LOG_B" |
		grep -vF "peer $IP_A:" | head -1)
	if [ $rc != 0 ] && ! echo "$out" | grep -q authenticated &&
	   [ -z "$seen" ] && [ -z "$others" ]; then
		result PASS netns:isolated "exit $rc${out:+: $(echo "$out" | head -1)}; B saw only $IP_A"
	else
		result FAIL netns:isolated "exit $rc: ${out:-no output}${seen:+; seen here:$seen}${others:+; B saw: $others}" "$LOG_B"
	fi
}

netns_test_wrong_key() {
	local other=$NETNS_DIR/other out rc
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$other"
	chmod 600 "$other"
	out=$(netns_peer A B "$other" 2>&1)
	rc=$?
	if [ $rc = 1 ] && echo "$out" | grep -q "does not hold our key" &&
	   wait_line "$LOG_B" "peer ${IP_A//./\\.}:[0-9]+ refused: the peer .* does not hold our key" "$WAIT_S"; then
		result PASS netns:wrong-key "$out"
	else
		result FAIL netns:wrong-key "exit $rc: $out" "$LOG_B"
	fi
}

netns_test_link() {
	local out rc t0 t1 _
	if ! out=$(netns_exec_a ip link set "$VETH_A" down 2>&1); then
		result FAIL netns:link-down "ip link set down: $out"
		return
	fi
	t0=$(date +%s%N)
	out=$(netns_exec_a timeout 15 "$BIN/cuvisor" peer "$IP_B:$NETNS_PORT" \
		--key "$KEY" 2>&1)
	rc=$?
	t1=$(date +%s%N)
	if [ $rc != 0 ] && [ $rc != 124 ] && [ $(( (t1 - t0) / 1000000 )) -lt 15000 ]; then
		result PASS netns:link-down "exit $rc in $(( (t1 - t0) / 1000000 )) ms: $(echo "$out" | head -1)"
	else
		result FAIL netns:link-down "exit $rc in $(( (t1 - t0) / 1000000 )) ms: ${out:-no output}"
	fi
	netns_exec_a ip link set "$VETH_A" up
	t0=$(date +%s%N)
	netns_link_wait "$NS_A" "$VETH_A"
	for _ in $(seq 1 20); do
		out=$(netns_peer A B 2>&1) && break
		sleep 0.5
	done
	t1=$(date +%s%N)
	if echo "$out" | grep -q authenticated; then
		result PASS netns:link-up "after $(( (t1 - t0) / 1000000 )) ms: $(echo "$out" | head -1)"
	else
		result FAIL netns:link-up "$out" "$LOG_B"
	fi
}

# Programs of A on B's GPU.
netns_test_remote_run() {
	local p out bad=
	for p in cu_copy cu_module cu_memset cu_pagecount; do
		out=$LOGS/netns/remote-$p.out
		CUVISOR_LOG=warn:${out%.out}.guest.log netns_exec_a timeout 120 \
			"$BIN/cuvisor" run --socket "$SOCK_A" --mem 256M \
			--host "$IP_B:$NETNS_PORT" -- "$TB/$p" > "$out" 2>&1 ||
			bad="$bad $p($(tail -1 "$out"); $(tail -n 1 "${out%.out}.guest.log" 2>/dev/null))"
	done
	if [ -z "$bad" ] && grep -q "serving its tenant .* a vGPU on gpu 0" "$LOG_B"; then
		result PASS "$NETNS_SEC":remote-run "cu_copy, cu_module, cu_memset, cu_pagecount on B's GPU from A"
	else
		result FAIL "$NETNS_SEC":remote-run "failed:${bad:- none, but B logged no vGPU}" "$LOG_A"
	fi
}

# The link cut under a running remote tenant.
netns_test_remote_cut() {
	local out=$LOGS/netns/remote-cut.out pid t0 t1 rc _
	netns_exec_a timeout 120 "$BIN/cuvisor" run --socket "$SOCK_A" \
		--mem 256M --host "$IP_B:$NETNS_PORT" -- "$TB/cu_pagecount" -t 0 \
		> "$out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	if ! wait_line "$out" "# ready" "$WAIT_S"; then
		result FAIL "$NETNS_SEC":remote-cut "the tenant did not start" "$out"
		return
	fi
	t0=$(date +%s%N)
	ip netns exec "$NS_A" ip link set "$VETH_A" down
	netns_pid_gone() { ! alive "$pid"; }
	wait_for "$WAIT_S" netns_pid_gone
	t1=$(date +%s%N)
	if alive "$pid"; then
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		result FAIL "$NETNS_SEC":remote-cut "the program still runs $WAIT_S s after the cut" "$out"
	else
		wait "$pid"
		rc=$?
		# silent: nothing came (a receiver, the connection's or a copy
		# lane's that the cut caught mid-piece), or nothing went (a
		# copy lane's sender)
		if [ "$rc" != 0 ] && grep -q "CUDA_ERROR_DEVICE_UNAVAILABLE" "$out" &&
		   grep -Eq "lost: the peer (went silent|stopped taking data)" "$LOG_A"; then
			result PASS "$NETNS_SEC":remote-cut "the program failed $(( (t1 - t0) / 1000000 )) ms after the cut (timeout 3 s): $(grep -m1 DEVICE_UNAVAILABLE "$out")"
		else
			result FAIL "$NETNS_SEC":remote-cut "exit $rc" "$out"
		fi
	fi
	ip netns exec "$NS_A" ip link set "$VETH_A" up
	netns_link_wait "$NS_A" "$VETH_A"
	# B's serving worker ends too: on the silence, or on A's close once
	# the link is back, whichever comes first; B's daemon reaps it.
	if wait_line "$LOG_B" "the vGPU served to .* ended" "$WAIT_S"; then
		result PASS "$NETNS_SEC":remote-cut-b "B's worker ended: $(grep -E 'went silent|closed the connection' "$LOG_B" | tail -n 1 | cut -c1-120)"
	else
		result FAIL "$NETNS_SEC":remote-cut-b "B's worker did not end" "$LOG_B"
	fi
}

# A daemon whose key B does not hold gets no vGPU.
netns_test_remote_key() {
	local other=$NETNS_DIR/other.key out=$LOGS/netns/remote-key.out rc
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$other"
	chmod 600 "$other"
	if ! netns_daemon A --peer-key "$other"; then
		result FAIL "$NETNS_SEC":remote-key "daemon A did not start" "$LOG_A"
		return
	fi
	netns_exec_a timeout 60 "$BIN/cuvisor" run --socket "$SOCK_A" \
		--mem 256M --host "$IP_B:$NETNS_PORT" -- "$TB/cu_memset" \
		> "$out" 2>&1
	rc=$?
	if [ "$rc" != 0 ] && grep -q "does not hold our key" "$LOG_A" &&
	   grep -q "refused: the peer .* does not hold our key" "$LOG_B"; then
		result PASS "$NETNS_SEC":remote-key "exit $rc; A: $(grep -m1 'does not hold' "$LOG_A" | cut -c1-150)"
	else
		result FAIL "$NETNS_SEC":remote-key "exit $rc" "$LOG_A"
	fi
	netns_daemon A
}

# The tenant's rounds so far (its last "# rounds N" line).
netns_rounds() { awk '$1 == "#" && $2 == "rounds" { n = $3 } END { print n + 0 }' "$1"; }

# A local tenant of A: cu_pagecount started, its id in NT_ID, the pid
# to wait for in NT_PID, the program's own in NT_GPID, its output in $1.
netns_tenant() {
	local out=$1 _
	shift
	CUVISOR_LOG=warn:${out%.out}.guest.log netns_exec_a timeout 300 \
		"$BIN/cuvisor" run --socket "$SOCK_A" --mem 512M -- \
		"$TB/cu_pagecount" -t 0 -v 4 "$@" > "$out" 2>&1 &
	NT_PID=$!
	BGPIDS+=("$NT_PID")
	wait_line "$out" "# ready" "$WAIT_S" || return 1
	NT_GPID=$(field "$out" guest_pid)
	NT_ID=$(tenant_of "$NT_GPID" "$SOCK_A")
}

# Ends the tenant (SIGTERM: a normal end) and says whether its final
# check passed.
netns_tenant_end() {
	kill -TERM "$NT_GPID" 2>/dev/null
	wait "$NT_PID"
}

# Rounds of output $1 grow past $2 within WAIT_S.
netns_rounds_grow() {
	netns_rounds_past() { [ "$(netns_rounds "$1")" -gt "$2" ]; }
	wait_for "$WAIT_S" netns_rounds_past "$1" "$2"
}

# netns_test_remote_migrate [--compress]: the A-B test to B and back
# (with --compress, both ways: zstd on the copy lanes, and B must have
# taken and sent some; then --compress of a tenant here is refused).
netns_test_remote_migrate() {
	local name=remote-migrate${1:+-zstd} out=$LOGS/netns/migrate${1:-}.out
	local m1 m2 m3 psa psb r0 bad=
	# -Z: memory that compresses, for --compress
	if ! netns_tenant "$out" -m 64 ${1:+-Z}; then
		result FAIL "$NETNS_SEC:$name" "the tenant did not start" "$out"
		return
	fi
	r0=$(netns_rounds "$out")
	m1=$("$BIN/cuvisor" migrate "$NT_ID" --socket "$SOCK_A" \
		--to "$IP_B:$NETNS_PORT" "$@" 2>&1) || bad="to B: $m1"
	psa=$("$BIN/cuvisor" ps --socket "$SOCK_A" 2>&1)
	psb=$("$BIN/cuvisor" ps --socket "$SOCK_B" 2>&1)
	echo "$psa" | grep -q "cu_pagecount .* on $IP_B:$NETNS_PORT" ||
		bad="$bad; ps on A: $psa"
	echo "$psb" | grep -q "serving .* program of tenant $NT_ID on" ||
		bad="$bad; ps on B: $psb"
	netns_rounds_grow "$out" "$r0" || bad="$bad; no rounds on B's GPU"
	r0=$(netns_rounds "$out")
	m2=$("$BIN/cuvisor" migrate "$NT_ID" --socket "$SOCK_A" --gpu 0 "$@" 2>&1) ||
		bad="$bad; back: $m2"
	"$BIN/cuvisor" ps --socket "$SOCK_A" 2>&1 | grep -q "cu_pagecount .* here" ||
		bad="$bad; ps on A after the way back"
	netns_rounds_grow "$out" "$r0" || bad="$bad; no rounds back on A"
	if [ -n "${1:-}" ] &&
	   m3=$("$BIN/cuvisor" migrate "$NT_ID" --socket "$SOCK_A" --gpu 0 "$@" 2>&1); then
		bad="$bad; --compress between two GPUs here: $m3"
	elif [ -n "${1:-}" ] && ! echo "$m3" | grep -q "between hosts"; then
		bad="$bad; --compress here said: $m3"
	fi
	netns_tenant_end || bad="$bad; final check: $(grep -m1 'not ok' "$out")"
	if [ -n "${1:-}" ] && ! wait_line "$LOG_B" "came compressed as" "$WAIT_S"; then
		bad="$bad; B took no compressed bytes"
	fi
	if [ -n "${1:-}" ] && ! wait_line "$LOG_B" "went compressed as" "$WAIT_S"; then
		bad="$bad; B sent no compressed bytes"
	fi
	if [ -z "$bad" ]; then
		result PASS "$NETNS_SEC:$name" "$m1 / $m2; $(netns_rounds "$out") rounds, every page right${1:+; B: $(grep -h 'came compressed' "$LOG_B" | tail -n 1 | sed 's/.*remote: //'), $(grep -h 'went compressed' "$LOG_B" | tail -n 1 | sed 's/.*remote: //')}"
	else
		result FAIL "$NETNS_SEC:$name" "$bad" "$out"
	fi
}

netns_test_remote_migrate_cut() {
	local out=$LOGS/netns/migrate-cut.out mout=$LOGS/netns/migrate-cut.cli
	local mpid rc r0 t0 t1 bad= n0
	if ! netns_tenant "$out" -m 256 -H 16; then
		result FAIL "$NETNS_SEC":remote-migrate-cut "the tenant did not start" "$out"
		return
	fi
	# 256 MiB at 40 MB/s: some 6 s of pre-copy to cut into, once A's
	# daemon has started the migration (then a little into it)
	n0=$(lines_of "$LOG_A")
	"$BIN/cuvisor" migrate "$NT_ID" --socket "$SOCK_A" \
		--to "$IP_B:$NETNS_PORT" --max-rate 40 > "$mout" 2>&1 &
	mpid=$!
	BGPIDS+=("$mpid")
	wait_line_after "$LOG_A" "$n0" "tenant $NT_ID: migrating from" "$WAIT_S"
	sleep 1
	t0=$(date +%s%N)
	ip netns exec "$NS_A" ip link set "$VETH_A" down
	wait "$mpid"
	rc=$?
	t1=$(date +%s%N)
	[ "$rc" != 0 ] || bad="the migration succeeded: $(cat "$mout")"
	r0=$(netns_rounds "$out")
	netns_rounds_grow "$out" "$r0" || bad="$bad; the tenant stopped counting"
	ip netns exec "$NS_A" ip link set "$VETH_A" up
	netns_link_wait "$NS_A" "$VETH_A"
	"$BIN/cuvisor" ps --socket "$SOCK_A" 2>&1 | grep -q "cu_pagecount .* here" ||
		bad="$bad; ps on A does not say here"
	netns_tenant_end || bad="$bad; final check: $(grep -m1 'not ok' "$out")"
	if [ -z "$bad" ]; then
		result PASS "$NETNS_SEC":remote-migrate-cut "migration failed $(( (t1 - t0) / 1000000 )) ms after the cut ($(head -c 160 "$mout")); the tenant ran on, every page right"
	else
		result FAIL "$NETNS_SEC":remote-migrate-cut "$bad" "$out"
	fi
}

# The remote tests over loopback: what runs where no namespaces can be
# made, and on a machine with a GPU (two daemons on the one GPU).
run_rloop() {
	NETNS_DAEMON_ARGS=()
	NETNS_SEC=rloop
	netns_setup_loop rloop || return
	result PASS rloop:setup "A pid $PID_A, B pid $PID_B on 127.0.0.1:$NETNS_PORT"
	netns_test_remote_run
	netns_test_remote_migrate
	netns_test_remote_migrate --compress
	netns_test_remote_key
	netns_cleanup
	NETNS_LOOP=0 NETNS_PORT=7430 NETNS_SEC=netns
}

run_netns() {
	NETNS_DAEMON_ARGS=(--remote-timeout 3)
	netns_setup netns || return
	result PASS netns:setup "$NS_A $IP_A pid $PID_A, $NS_B $IP_B pid $PID_B, veth $VETH_A-$VETH_B"
	netns_test_peer_ab
	netns_test_isolated
	netns_test_wrong_key
	netns_test_link
	netns_test_remote_run
	netns_test_remote_cut
	netns_test_remote_key
	netns_test_remote_migrate
	netns_test_remote_migrate_cut
	netns_cleanup
}
