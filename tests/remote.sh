# SPDX-License-Identifier: MIT
# The "peer" section of tests/run.sh (sourced by it; uses its helpers):
# the TCP link between two hosts' daemons (core/peer.h, docs/remote.md),
# here two daemons on one machine over loopback.
#
#   peer:start         a daemon with --peer-listen 127.0.0.1:0 and a key
#   peer:info          `cuvisor peer` with the key: authenticated, the
#                      peer's GPUs listed
#   peer:wrong-key     with another key: exit 1, "does not hold our key",
#                      and the daemon logged the refusal
#   peer:key-mode      a key file others may read: refused before dialing
#   peer:not-a-peer    bytes that are no HELLO: the daemon refuses them
#                      and still answers a good peer afterwards
#   peer:no-key        --peer-listen without --peer-key: the daemon does
#                      not start, and says why

run_peer() {
	local d=$LOGS/peer s=$LOGS/peer/d.sock log=$LOGS/peer/d.log pid port i out
	if ! have_cuvisor; then
		result SKIP peer "cuvisor is not built"
		return
	fi
	mkdir -p "$d"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$d/key"
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$d/other"
	chmod 600 "$d/key" "$d/other"
	"$BIN/cuvisord" --socket "$s" --backend "$BACKEND" --spare-workers 0 \
		--peer-listen 127.0.0.1:0 --peer-key "$d/key" \
		--log "info:$log" > "$d/out" 2>&1 &
	pid=$!
	BGPIDS+=("$pid")
	peer_port() {
		port=$(sed -n 's/.*peer link: listening on .* (port \([0-9]*\)).*/\1/p' "$log" 2>/dev/null)
		[ -n "$port" ] || ! alive "$pid"
	}
	wait_for "$WAIT_S" peer_port
	if [ -z "$port" ]; then
		result FAIL peer:start "no peer port in the log" "$log"
		kill "$pid" 2>/dev/null
		return
	fi
	result PASS peer:start "port $port"
	out=$(timeout 20 "$BIN/cuvisor" peer "127.0.0.1:$port" --key "$d/key" 2>&1)
	if [ $? = 0 ] && echo "$out" | grep -q "authenticated" &&
	   echo "$out" | grep -q "gpu 0:"; then
		result PASS peer:info "$(echo "$out" | head -1)"
	else
		result FAIL peer:info "$out" "$log"
	fi
	out=$(timeout 20 "$BIN/cuvisor" peer "127.0.0.1:$port" --key "$d/other" 2>&1)
	if [ $? = 1 ] && echo "$out" | grep -q "does not hold our key" &&
	   wait_line "$log" "peer .* refused: the peer .* does not hold our key" "$WAIT_S"; then
		result PASS peer:wrong-key "$out"
	else
		result FAIL peer:wrong-key "$out" "$log"
	fi
	chmod 644 "$d/other"
	out=$(timeout 20 "$BIN/cuvisor" peer "127.0.0.1:$port" --key "$d/other" 2>&1)
	if [ $? = 1 ] && echo "$out" | grep -q "chmod 600"; then
		result PASS peer:key-mode "$out"
	else
		result FAIL peer:key-mode "$out"
	fi
	# 112 bytes that are not a HELLO, then a good peer
	python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), 5)
s.sendall(b'GET / HTTP/1.0\r\n' + b'x' * 96)
s.settimeout(5)
try:
    while s.recv(4096):
        pass
except OSError:
    pass" "$port" > "$d/junk.out" 2>&1
	out=$(timeout 20 "$BIN/cuvisor" peer "127.0.0.1:$port" --key "$d/key" 2>&1)
	if wait_line "$log" "refused: not a cuvisor peer" "$WAIT_S" &&
	   echo "$out" | grep -q authenticated; then
		result PASS peer:not-a-peer "refused, and a good peer after it: $(echo "$out" | head -1)"
	else
		result FAIL peer:not-a-peer "$out" "$log"
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	out=$(timeout 20 "$BIN/cuvisord" --socket "$d/s2" --backend "$BACKEND" \
		--peer-listen 127.0.0.1:0 2>&1)
	if [ $? = 1 ] && echo "$out" | grep -q "needs --peer-key"; then
		result PASS peer:no-key "$(echo "$out" | tail -1)"
	else
		result FAIL peer:no-key "$out"
	fi
}
