# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Sourced by bench/run.sh (REMOTE=1) and bench/remote_mig.sh: two daemons
# of this machine as two hosts over loopback TCP (docs/remote.md).
#
#   remote_daemons BIN DIR BACKEND   B (a.k.a. the GPU's host) listens for
#       peers on an ephemeral 127.0.0.1 port, A (the program's host) holds
#       the same key; sockets DIR/a.sock, DIR/b.sock, logs DIR/a.log,
#       DIR/b.log. Sets REMOTE_PORT; 0 once both answer, 1 after 10 s.
#   remote_daemons_stop BIN DIR      shuts both down.

remote_daemons() {
	local bin=$1 dir=$2 backend=$3 _
	od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$dir/key"
	chmod 600 "$dir/key"
	"$bin/cuvisord" --socket "$dir/b.sock" --backend "$backend" \
		--spare-workers 0 --peer-listen 127.0.0.1:0 --peer-key "$dir/key" \
		--log "info:$dir/b.log" > /dev/null 2>&1 &
	"$bin/cuvisord" --socket "$dir/a.sock" --backend "$backend" \
		--spare-workers 0 --peer-key "$dir/key" \
		--log "info:$dir/a.log" > /dev/null 2>&1 &
	REMOTE_PORT=
	for _ in $(seq 1 100); do
		REMOTE_PORT=$(sed -n 's/.*peer link: listening on .* (port \([0-9]*\)).*/\1/p' \
			"$dir/b.log" 2>/dev/null)
		[ -n "$REMOTE_PORT" ] &&
			"$bin/cuvisor" ps --socket "$dir/a.sock" > /dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	return 1
}

remote_daemons_stop() {
	"$1/cuvisor" shutdown --socket "$2/a.sock" > /dev/null 2>&1
	"$1/cuvisor" shutdown --socket "$2/b.sock" > /dev/null 2>&1
	sleep 0.5
}
