# SPDX-License-Identifier: MIT
# The "limits" section of tests/run.sh (sourced by it; uses its helpers):
# what a local user or anyone who reaches the peer port can do to lock
# others out or flood the log (issue 15, points 7 to 9).
#
#   limits:peer-idle-*   an attacker keeps N idle TCP connections open to
#                        the peer port (reopening each one the daemon
#                        drops), from one address (10, then 100) and from
#                        200 addresses (400): a real `cuvisor peer` from
#                        127.0.0.1 authenticates three times meanwhile
#   limits:ctl-conns     (root) a throwaway user allowed by --allow-uid
#                        opens 1,100 idle control connections: 64 are
#                        taken (--max-conns-per-user default), the others
#                        refused with the reason, and root's `cuvisor ps`
#                        answers while they are held
#   limits:ctl-idle      (root) the user's 64 connections are closed after
#                        the idle timeout (default 10 s), with the reason
#   limits:log-flood     (root) a second throwaway user, not allowed,
#                        connects as fast as it can for 10 s: the daemon's
#                        log grows by a few KB (at most 8 KiB)
# The users (cvl<pid><random>a/b) are removed at the end, also on failure.

# The interpreter the throwaway users run (root's may live under /root).
LIM_PY=/usr/bin/python3
TEST_USERS=()

# peer_hold.py PORT N ADDRS STOPFILE DEADLINE_S: keeps N connections to
# 127.0.0.1:PORT open, from the addresses ADDRS (A,B,... or
# PREFIX.FIRST-LAST), reading what comes and sending nothing, reopening
# each one the other end closes (at most 500 a second), until STOPFILE
# exists or DEADLINE_S pass. Prints
# "ready" once each of the N was open (connected) at least once, and at
# the end "reopened R".
lim_write_py() {
	cat > "$1/peer_hold.py" <<'EOF'
import os, select, socket, sys, time
port, n, spec, stop, deadline = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], time.time() + float(sys.argv[5])
if '-' in spec:
    pre, rng = spec.rsplit('.', 1)
    lo, hi = map(int, rng.split('-'))
    addrs = ['%s.%d' % (pre, i) for i in range(lo, hi + 1)]
else:
    addrs = spec.split(',')
def conn(i):
    s = socket.socket()
    s.setblocking(False)
    s.bind((addrs[i % len(addrs)], 0))
    try:
        s.connect(('127.0.0.1', port))
    except BlockingIOError:
        pass
    return s
socks = [conn(i) for i in range(n)]
ready, reopened, budget, t0, up = False, 0, 500, time.time(), set()
while time.time() < deadline and not os.path.exists(stop):
    if budget <= 0:  # pacing, not waiting for anything
        time.sleep(max(0, t0 + 1 - time.time()))
        budget, t0 = 500, time.time()
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN | select.POLLOUT)
    for fd, ev in p.poll(50):
        i = next(k for k, s in enumerate(socks) if s.fileno() == fd)
        gone = ev & (select.POLLHUP | select.POLLERR)
        if ev & select.POLLIN and not gone:
            # the daemon's HELLO: read, never answered; only its end of
            # the connection ends it
            try:
                gone = not socks[i].recv(4096)
            except BlockingIOError:
                pass
            except OSError:
                gone = True
        if gone:
            if time.time() - t0 >= 1:
                budget, t0 = 500, time.time()
            if budget > 0:
                budget -= 1
                socks[i].close()
                socks[i] = conn(i)
                reopened += 1
        elif ev & select.POLLOUT:
            up.add(i)
    if not ready and len(up) == n:
        ready = True
        print('ready', flush=True)
print('reopened', reopened, flush=True)
EOF
	cat > "$1/ctl_hold.py" <<'EOF'
import os, resource, socket, struct, sys, time
sock, n, go, deadline = sys.argv[1], int(sys.argv[2]), sys.argv[3], time.time() + 60
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
def refusal(s):
    try:
        m = s.recv(4096)
    except BlockingIOError:
        return None
    except OSError:
        m = b''
    if len(m) < 16:
        try:
            m = s.recv(4096)
        except OSError:
            m = b''
    if len(m) < 16:
        return (0, 'closed without a refusal')
    magic, typ, flags, ln, st = struct.unpack('<IHHIi', m[:16])
    return (st, m[16:16 + ln].split(b'\0')[0].decode('ascii', 'replace'))
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sock)
    s.setblocking(False)
    socks.append(s)
print('opened', flush=True)
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
taken, refused, why = [], 0, ''
for s in socks:
    r = refusal(s)
    if r is None:
        taken.append(s)
    else:
        refused += 1
        why = r[1]
print('taken %d refused %d: %s' % (len(taken), refused, why), flush=True)
t0, closed, why = time.time(), 0, ''
while closed < len(taken) and time.time() < deadline:
    for s in taken:
        if s.fileno() < 0:
            continue
        r = refusal(s)
        if r is not None:
            closed += 1
            why = r[1]
            s.close()
    time.sleep(0.05)
print('idle-closed %d of %d after %.1f s: %s' % (closed, len(taken), time.time() - t0, why), flush=True)
EOF
	cat > "$1/ctl_flood.py" <<'EOF'
import socket, sys, time
sock, secs = sys.argv[1], float(sys.argv[2])
n, end = 0, time.time() + secs
while time.time() < end and n < 5000000:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(sock)
        n += 1
    except OSError:
        pass
    s.close()
print('connects', n, flush=True)
EOF
	chmod 644 "$1"/*.py
}

lim_useradd() {
	useradd --no-create-home --shell /usr/sbin/nologin "$1" > /dev/null 2>&1 || return 1
	TEST_USERS+=("$1")
}

lim_userdel() {
	local u
	for u in "${TEST_USERS[@]}"; do
		userdel "$u" > /dev/null 2>&1
	done
	TEST_USERS=()
}

# lim_peer_step NAME N ADDRS: N idle connections held from ADDRS while
# a real peer authenticates three times.
lim_peer_step() {
	local name=$1 n=$2 addrs=$3 d=$LOGS/limits i ok=0 hp out
	rm -f "$d/stop.$name"
	python3 "$d/peer_hold.py" "$LIM_PORT" "$n" "$addrs" "$d/stop.$name" 60 \
		> "$d/hold.$name" 2>&1 &
	hp=$!
	BGPIDS+=("$hp")
	if ! wait_line "$d/hold.$name" '^ready' 20; then
		touch "$d/stop.$name"
		wait "$hp" 2>/dev/null
		result FAIL "limits:peer-idle-$name" "the $n connections never were all open at once" "$d/hold.$name"
		return 1
	fi
	for i in 1 2 3; do
		out=$(timeout 20 "$BIN/cuvisor" peer "127.0.0.1:$LIM_PORT" --key "$d/key" 2>&1) &&
			echo "$out" | grep -q authenticated && ok=$((ok + 1))
	done
	touch "$d/stop.$name"
	wait "$hp" 2>/dev/null
	if [ $ok = 3 ]; then
		result PASS "limits:peer-idle-$name" "$n idle connections held from $addrs ($(grep -o 'reopened [0-9]*' "$d/hold.$name") times after the daemon dropped them): a real peer authenticated 3 of 3 times"
		return 0
	fi
	result FAIL "limits:peer-idle-$name" "with $n idle connections from $addrs a real peer authenticated $ok of 3 times: $out" "$d/d.log"
	return 1
}

run_limits_peer() {
	local d=$LOGS/limits i pid
	"$BIN/cuvisord" --socket "$d/p.sock" --backend "$BACKEND" --spare-workers 0 \
		--peer-listen 127.0.0.1:0 --peer-key "$d/key" \
		--log "info:$d/d.log" > "$d/d.out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	LIM_PORT=
	for i in $(seq 1 100); do
		LIM_PORT=$(sed -n 's/.*peer link: listening on .* (port \([0-9]*\)).*/\1/p' "$d/d.log" 2>/dev/null)
		[ -n "$LIM_PORT" ] && break
		sleep 0.1
	done
	if [ -z "$LIM_PORT" ]; then
		result FAIL limits:peer-start "no peer port in the log" "$d/d.log"
		kill "$pid" 2>/dev/null
		return
	fi
	lim_peer_step 10 10 127.0.0.2
	lim_peer_step 100 100 127.0.0.2
	lim_peer_step 400-from-200-addrs 400 127.0.1.1-200
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

run_limits_ctl() {
	local d=$LOGS/limits s ua ub hp i line t0 before after n
	if [ "$(id -u)" != 0 ] || ! command -v useradd > /dev/null || [ ! -x "$LIM_PY" ]; then
		result SKIP limits:ctl "needs root, useradd and $LIM_PY (throwaway users)"
		return
	fi
	ua=cvl$$${RANDOM}a
	ub=cvl$$${RANDOM}b
	if ! lim_useradd "$ua" || ! lim_useradd "$ub"; then
		result FAIL limits:ctl "useradd $ua / $ub failed"
		lim_userdel
		return
	fi
	# A directory the users can reach; the socket is 0666 (--allow-uid),
	# SO_PEERCRED decides.
	s=$(mktemp -d /tmp/cvlim.XXXXXX) && chmod 755 "$s"
	cp "$d"/*.py "$s/" && chmod 644 "$s"/*.py
	"$BIN/cuvisord" --socket "$s/d.sock" --backend "$BACKEND" --spare-workers 0 \
		--allow-uid "$ua" --log "info:$d/ctl.log" > "$d/ctl.out" 2>&1 &
	LIM_DPID=$!
	BGPIDS+=("$LIM_DPID")
	for i in $(seq 1 100); do
		"$BIN/cuvisor" ps --socket "$s/d.sock" > /dev/null 2>&1 && break
		sleep 0.1
	done
	# 1,100 idle connections of an allowed user; root's ps, queued after
	# them, answers once the daemon has taken or refused every one.
	runuser -u "$ua" -- "$LIM_PY" "$s/ctl_hold.py" "$s/d.sock" 1100 "$s/go" \
		> "$d/ctl_hold.out" 2>&1 &
	hp=$!
	BGPIDS+=("$hp")
	if wait_line "$d/ctl_hold.out" '^opened' 30 &&
	   timeout 10 "$BIN/cuvisor" ps --socket "$s/d.sock" > "$d/ps.out" 2>&1; then
		touch "$s/go"
		wait_line "$d/ctl_hold.out" '^taken' 10
		line=$(grep '^taken' "$d/ctl_hold.out")
		case $line in
		"taken 64 refused 1036: uid "*" has 64 connections to the daemon already (--max-conns-per-user 64)")
			result PASS limits:ctl-conns "$ua held 1100 idle connections: root's ps answered; $line" ;;
		*) result FAIL limits:ctl-conns "$line" "$d/ctl_hold.out" ;;
		esac
	else
		touch "$s/go"
		result FAIL limits:ctl-conns "root's ps did not answer while $ua held 1100 connections" "$d/ps.out"
	fi
	if wait_line "$d/ctl_hold.out" '^idle-closed 64 of 64 .*--idle-timeout' 30; then
		result PASS limits:ctl-idle "$(grep '^idle-closed' "$d/ctl_hold.out")"
	else
		result FAIL limits:ctl-idle "the idle connections were not closed with the reason" "$d/ctl_hold.out"
	fi
	wait "$hp" 2>/dev/null
	# A user that is not allowed connects for 10 s; root's ps after the
	# flood returns once the daemon went through all of it.
	before=$(stat -c %s "$d/ctl.log")
	t0=$(now_ms)
	runuser -u "$ub" -- "$LIM_PY" "$s/ctl_flood.py" "$s/d.sock" 10 > "$d/flood.out" 2>&1
	timeout 30 "$BIN/cuvisor" ps --socket "$s/d.sock" > /dev/null 2>&1
	after=$(stat -c %s "$d/ctl.log")
	n=$(sed -n 's/^connects //p' "$d/flood.out")
	if [ -n "$n" ] && [ "$n" -ge 1000 ] && [ $((after - before)) -le 8192 ]; then
		result PASS limits:log-flood "$n refused connects in $(( ($(now_ms) - t0) / 1000 )) s grew the log by $((after - before)) bytes"
	else
		result FAIL limits:log-flood "${n:-no} connects grew the log by $((after - before)) bytes" "$d/flood.out"
	fi
	"$BIN/cuvisor" shutdown --socket "$s/d.sock" > /dev/null 2>&1
	for i in $(seq 1 50); do
		alive "$LIM_DPID" || break
		sleep 0.1
	done
	alive "$LIM_DPID" && kill -KILL "$LIM_DPID" 2>/dev/null
	wait "$LIM_DPID" 2>/dev/null
	rm -rf "$s"
	lim_userdel
}

run_limits() {
	local d=$LOGS/limits
	if ! have_cuvisor; then
		result SKIP limits "cuvisor is not built"
		return
	fi
	mkdir -p "$d"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$d/key"
	chmod 600 "$d/key"
	lim_write_py "$d"
	run_limits_peer
	run_limits_ctl
}
