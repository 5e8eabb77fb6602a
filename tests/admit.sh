# SPDX-License-Identifier: MIT
# The "admit" section of tests/run.sh (sourced by it; uses its helpers):
# `cuvisor run` and a daemon that is there but refuses (issue 15, point
# 10). Each test has its own daemon, socket and directory, and stops what
# it started.
#   admit:overcommit-*     two tenants whose quotas add up past the host
#                          GPU's memory: the second is refused, by `cuvisor
#                          run` (exit 125) and by the guest library
#                          (CUVISOR_LOG=error), with the sizes and what is
#                          left, and no private daemon starts
#   admit:backend-*        `cuvisor run --backend X` against a daemon of
#                          the other backend fails and runs nothing
#   admit:stale-socket     a socket nobody listens on is no daemon: a
#                          private one runs the program
#   admit:uid-*            (root) a throwaway user (useradd) whom the daemon
#                          refuses, by the socket's mode and by uid: `cuvisor
#                          run` fails with the reason and starts no private
#                          daemon; with --fallback-private it does, saying so

AD_DIR=
AD_PID=

# ad_daemon NAME ARGS...: a daemon of this section at $AD_DIR/NAME.sock
# (pid in AD_PID); false if it did not answer within 10 s.
ad_daemon() {
	local name=$1 i
	shift
	"$BIN/cuvisord" --socket "$AD_DIR/$name.sock" --backend "$BACKEND" \
		--spare-workers 0 --log "info:$LOGS/admit-$name-d.log" "$@" \
		> "$LOGS/admit-$name-d.out" 2>&1 &
	AD_PID=$!
	BGPIDS+=("$AD_PID")
	for i in $(seq 1 200); do
		timeout 10 "$BIN/cuvisor" ps --socket "$AD_DIR/$name.sock" \
			> /dev/null 2>&1 && return 0
		alive "$AD_PID" || return 1
		sleep 0.05
	done
	return 1
}

# ad_stop NAME: stops that daemon (and its tenants); waits for it.
ad_stop() {
	local i
	timeout 20 "$BIN/cuvisor" shutdown --socket "$AD_DIR/$1.sock" \
		> /dev/null 2>&1
	for i in $(seq 1 200); do
		alive "$AD_PID" || break
		sleep 0.05
	done
	alive "$AD_PID" && kill -KILL "$AD_PID" 2>/dev/null
	wait "$AD_PID" 2>/dev/null
	AD_PID=
}

# ad_expect NAME RC REGEX FILE RC_GOT [NOT_REGEX]: PASS when RC_GOT is RC
# and FILE matches REGEX (and not NOT_REGEX).
ad_expect() {
	local name=$1 want=$2 re=$3 f=$4 got=$5 not=${6:-}
	if [ "$got" = "$want" ] && grep -qE -- "$re" "$f" &&
	   { [ -z "$not" ] || ! grep -qE -- "$not" "$f"; }; then
		result PASS "admit:$name" "$(grep -E -- "$re" "$f" | head -n 1 | cut -c1-160)"
	else
		result FAIL "admit:$name" "exit $got (want $want), output: $(head -c 300 "$f" | tr '\n' ' ')"
	fi
}

# Private daemons that `cuvisor run` made under XDG_RUNTIME_DIR=$1.
ad_private_dirs() { find "$1" -maxdepth 2 -name 'run-*' 2>/dev/null | wc -l; }

ad_overcommit() {
	local total q1 out=$LOGS/admit-oc.out xdg=$AD_DIR/xdg-oc rc cli gpid
	local why="quota 512.0 MiB asked, 256.0 MiB of gpu 0's [0-9.]+ GiB left"
	if [ "$BACKEND" != host ]; then
		result SKIP admit:overcommit "sizes the tenants from the host backend's memory"
		return
	fi
	# the host backend's GPU: half the machine's memory (backend_host.c)
	total=$(( $(getconf _PHYS_PAGES) * $(getconf PAGESIZE) / 2 ))
	q1=$(( total - (256 << 20) ))
	mkdir -p "$xdg" && chmod 700 "$xdg"
	if ! ad_daemon oc; then
		result FAIL admit:overcommit-daemon "cuvisord did not answer" "$LOGS/admit-oc-d.log"
		return
	fi
	timeout 120 "$BIN/cuvisor" run --socket "$AD_DIR/oc.sock" --gpu 0 \
		--mem "$q1" -- "$TB/cu_pagecount" -t 0 -m 8 > "$LOGS/admit-oc-1.log" 2>&1 &
	cli=$!
	BGPIDS+=("$cli")
	if ! wait_line "$LOGS/admit-oc-1.log" '^# ready' 60; then
		result FAIL admit:overcommit-first "the first tenant did not start" "$LOGS/admit-oc-1.log"
	else
		XDG_RUNTIME_DIR=$xdg timeout 60 "$BIN/cuvisor" run \
			--socket "$AD_DIR/oc.sock" --gpu 0 --mem 512M -- \
			"$TB/cu_device" > "$out" 2>&1
		rc=$?
		ad_expect overcommit-run-refused 125 "refuses a vGPU: $why" "$out" $rc '^ok '
		if [ "$(ad_private_dirs "$xdg")" = 0 ]; then
			result PASS admit:overcommit-no-private-daemon
		else
			result FAIL admit:overcommit-no-private-daemon "$(find "$xdg")"
		fi
		# the program on its own: the guest library says why
		CUVISOR_SOCKET=$AD_DIR/oc.sock CUVISOR_GPU=0 CUVISOR_MEM=$((512 << 20)) \
			CUVISOR_LOG=error LD_LIBRARY_PATH=$ROOT/$O/lib \
			timeout 60 env -u CVT_EXPECT_MEM "$TB/cu_device" > "$out" 2>&1
		rc=$?
		[ $rc = 0 ] || rc=1
		ad_expect overcommit-guest-says-why 1 "refused a vGPU: $why" "$out" $rc
	fi
	gpid=$(field "$LOGS/admit-oc-1.log" guest_pid)
	[ "${gpid:-0}" -gt 0 ] && kill -TERM "$gpid" 2>/dev/null
	wait "$cli" 2>/dev/null
	rc=$?
	ad_expect overcommit-first-unharmed 0 "ready" "$LOGS/admit-oc-1.log" $rc
	ad_stop oc
}

ad_backend() {
	local other=cuda out=$LOGS/admit-backend.out rc
	[ "$BACKEND" = cuda ] && other=host
	if ! ad_daemon be; then
		result FAIL admit:backend-daemon "cuvisord did not answer" "$LOGS/admit-be-d.log"
		return
	fi
	timeout 60 "$BIN/cuvisor" run --socket "$AD_DIR/be.sock" --backend "$other" \
		--mem "$MEM" -- "$TB/cu_device" > "$out" 2>&1
	rc=$?
	ad_expect "backend-$other-refused" 125 "--backend $other: the daemon at .* uses the $BACKEND backend" "$out" $rc '^ok '
	timeout 60 "$BIN/cuvisor" run --socket "$AD_DIR/be.sock" --backend "$BACKEND" \
		--mem "$MEM" -- "$TB/cu_device" > "$out" 2>&1
	rc=$?
	ad_expect "backend-$BACKEND-runs" 0 '^ok ' "$out" $rc
	ad_stop be
}

ad_stale() {
	local out=$LOGS/admit-stale.out rc
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1])
s.close()' "$AD_DIR/stale.sock"
	timeout 60 "$BIN/cuvisor" run --socket "$AD_DIR/stale.sock" --mem "$MEM" \
		-- "$TB/cu_device" > "$out" 2>&1
	rc=$?
	ad_expect stale-socket 0 '^ok ' "$out" $rc
	rm -f "$AD_DIR/stale.sock"
}

# ad_as_user USER OUT ARGS...: `cuvisor ARGS` as USER, in a clean
# environment (no XDG_RUNTIME_DIR: private daemons go to /tmp/cuvisor-UID).
ad_as_user() {
	local user=$1 out=$2
	shift 2
	timeout 60 runuser -u "$user" -- env -i PATH=/usr/bin:/bin \
		CUVISOR_HOST_KERNELS="$CUVISOR_HOST_KERNELS" "$BIN/cuvisor" "$@" \
		> "$out" 2>&1
}

# Private daemons (processes and directories) of uid $1: all ours.
ad_user_privates() {
	local n
	n=$(pgrep -u "$1" -c cuvisord 2>/dev/null)
	echo $(( ${n:-0} + $(find "/tmp/cuvisor-$1" -maxdepth 1 -name 'run-*' 2>/dev/null | wc -l) ))
}

ad_uid() {
	local user="cvt$$x$RANDOM" uid out=$LOGS/admit-uid.out rc
	if [ "$(id -u)" != 0 ]; then
		result SKIP admit:uid "needs root (useradd, a daemon of another user)"
		return
	fi
	if ! useradd -M -N -s /usr/sbin/nologin "$user" 2> "$LOGS/admit-useradd.log"; then
		result SKIP admit:uid "useradd failed: $(head -n 1 "$LOGS/admit-useradd.log")"
		return
	fi
	uid=$(id -u "$user")
	if ! runuser -u "$user" -- test -x "$BIN/cuvisor"; then
		result SKIP admit:uid "user $user cannot run $BIN/cuvisor (a private directory above it)"
		userdel "$user" 2>/dev/null
		return
	fi
	# 1. the socket's mode keeps the user out (EACCES): a refusal
	if ad_daemon uid; then
		ad_as_user "$user" "$out" run --socket "$AD_DIR/uid.sock" -- /bin/true
		rc=$?
		ad_expect uid-socket-mode-refused 125 "socket .* cannot be used: Permission denied" "$out" $rc
		ad_stop uid
	else
		result FAIL admit:uid-daemon "cuvisord did not answer" "$LOGS/admit-uid-d.log"
	fi
	# 2. the socket is open to all, the daemon refuses the uid
	if ad_daemon uid --allow-uid 65533; then
		ad_as_user "$user" "$out" run --socket "$AD_DIR/uid.sock" -- /bin/true
		rc=$?
		ad_expect uid-refused 125 "refused the connection: uid $uid is not allowed" "$out" $rc
		if [ "$(ad_user_privates "$uid")" = 0 ]; then
			result PASS admit:uid-no-private-daemon
		else
			result FAIL admit:uid-no-private-daemon "uid $uid has $(ad_user_privates "$uid") private daemon(s)"
		fi
		# 3. allowed: the fallback runs a private daemon and says so
		ad_as_user "$user" "$out" run --socket "$AD_DIR/uid.sock" \
			--fallback-private -- /bin/true
		rc=$?
		ad_expect uid-fallback-private 0 "starting a private daemon instead" "$out" $rc
		ad_stop uid
	else
		result FAIL admit:uid-daemon "cuvisord --allow-uid did not answer" "$LOGS/admit-uid-d.log"
	fi
	rm -rf "/tmp/cuvisor-$uid"
	userdel "$user" 2>/dev/null
}

run_admit() {
	if ! have_cuvisor; then
		result SKIP admit "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_pagecount" ] || [ ! -x "$TB/cu_device" ]; then
		result FAIL admit "test programs missing (make test-programs)"
		return
	fi
	AD_DIR=$(mktemp -d /tmp/cvt-admit.XXXXXX) || return
	chmod 755 "$AD_DIR"
	ad_overcommit
	ad_backend
	ad_stale
	ad_uid
	rm -rf "$AD_DIR"
}
