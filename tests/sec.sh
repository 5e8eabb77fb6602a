# SPDX-License-Identifier: MIT
# The "sec" section of tests/run.sh (sourced by it; uses its helpers): no
# one may impersonate the daemon, read an image or make the CLI write
# through a link (issue 15, points 4, 5, 6 and 13).
#
#   sec:squat-ps, sec:squat-guest, sec:squat-run
#       a throwaway "attacker" user creates a throwaway "victim" user's
#       /tmp/cuvisor-UID/ first and runs a daemon there that allows the
#       victim in; the victim (XDG_RUNTIME_DIR unset) gets a refusal that
#       names the path, the owner and why from `cuvisor ps`, from a guest
#       program (CUVISOR_LOG; cuInit fails) and from `cuvisor run`, and
#       the attacker's daemon gets no tenant
#   sec:squat-opt-in
#       the same daemon, named with CUVISOR_SOCKET and trusted with
#       CUVISOR_DAEMON_UID, is used: the explicit way still works
#   sec:squat-private-dir
#       the attacker's directory without a daemon: `cuvisor run` refuses
#       to start a private daemon in it
#   sec:image-mode, sec:image-unreadable, sec:image-mode-option
#       an image is 0600 and the other user cannot read it; --mode 0640
#       gives 0640
#   sec:symlink-to-fifo, sec:symlink-to-devnull, sec:report-symlink
#       a symlink planted (by the other user, in a directory it may
#       write) at the output name, pointing to a fifo or /dev/null:
#       checkpoint refuses it and nothing goes through the link; the same
#       for migrate --report
#   sec:token-not-on-cmdline, sec:holder-token-not-on-cmdline
#       neither a worker's nor a holder's /proc/PID/cmdline holds the
#       token (--token or 32 hex digits); the holder still restores
#
# The users are created with useradd (unique names) and removed at the
# end; that needs root (CI runs as root): without it those tests SKIP.
# Every wait has a deadline; only processes and files made here are
# killed or removed.

SEC_DIR=
SEC_VICTIM=
SEC_ATTACKER=
SEC_APID=
SEC_ID=
SEC_LOG=
SEC_CLI=
SEC_GPID=

# sec_as USER CMD...: runs CMD as USER, with no XDG_RUNTIME_DIR or
# CUVISOR_SOCKET of ours (a login without a runtime directory: su, cron).
sec_as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups \
		env -u XDG_RUNTIME_DIR -u CUVISOR_SOCKET -u CUVISOR_DAEMON_UID \
		HOME=/ "$@"
}

# sec_as_bg USER CMD...: the same for `sec_as_bg ... &`: the background
# subshell becomes CMD (exec), so that $! is CMD's pid, ours to kill.
sec_as_bg() {
	local u=$1
	shift
	exec setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups \
		env -u XDG_RUNTIME_DIR -u CUVISOR_SOCKET -u CUVISOR_DAEMON_UID \
		HOME=/ "$@"
}

sec_users() {
	local tag
	tag=$(printf '%s' "$$-$RANDOM" | tr -dc '0-9-')
	SEC_VICTIM=cvsec-v$tag
	SEC_ATTACKER=cvsec-a$tag
	useradd -M -N -s /usr/sbin/nologin "$SEC_VICTIM" 2>/dev/null || { SEC_VICTIM=; return 1; }
	useradd -M -N -s /usr/sbin/nologin "$SEC_ATTACKER" 2>/dev/null || { SEC_ATTACKER=; return 1; }
	# The victim and attacker must reach our build (and nothing else).
	sec_as "$SEC_VICTIM" test -x "$BIN/cuvisor" -a -r "$ROOT/$O/lib/libcuda.so.1"
}

# sec_userdel USER: removes one of our users, trying for 10 s (a process
# of it may still be ending; another job may hold the passwd lock); says
# so if it cannot.
sec_userdel() {
	local u=$1 err
	for _ in $(seq 200); do
		err=$(userdel "$u" 2>&1) && return 0
		sleep 0.05
	done
	result FAIL sec:user-removed "userdel $u: $err; processes: $(pgrep -u "$u" -a 2>/dev/null | head -n 3 | tr '\n' ' ')"
}

# Removes our users (and the victim's directory, if the attacker's
# daemon left it); also called by tests/run.sh's cleanup on an interrupt.
sec_users_remove() {
	local vuid
	sec_attacker_stop
	if [ -n "$SEC_VICTIM" ]; then
		vuid=$(id -u "$SEC_VICTIM" 2>/dev/null)
		[ -n "$vuid" ] && [ -n "$SEC_ATTACKER" ] &&
			[ "$(stat -c %U "/tmp/cuvisor-$vuid" 2>/dev/null)" = "$SEC_ATTACKER" ] &&
			rm -rf "/tmp/cuvisor-$vuid"
		sec_userdel "$SEC_VICTIM"
	fi
	[ -n "$SEC_ATTACKER" ] && sec_userdel "$SEC_ATTACKER"
	SEC_VICTIM= SEC_ATTACKER=
}

# The attacker's daemon in the victim's default directory; 0 once it
# answers (within 10 s).
sec_attacker_daemon() {
	local vuid=$1 sock=/tmp/cuvisor-$1/cuvisord.sock alog=$SEC_DIR/att/attacker.log
	sec_as_bg "$SEC_ATTACKER" "$BIN/cuvisord" --socket "$sock" --backend host \
		--allow-uid "$vuid" --spare-workers 0 --log "info:$alog" \
		> "$SEC_DIR/attacker.out" 2>&1 &
	SEC_APID=$!
	BGPIDS+=("$SEC_APID")
	for _ in $(seq 100); do
		[ -S "$sock" ] && grep -q "listening on $sock" "$alog" 2>/dev/null && return 0
		alive "$SEC_APID" || return 1
		sleep 0.1
	done
	return 1
}

sec_attacker_stop() {
	[ -n "$SEC_APID" ] || return 0
	kill -TERM "$SEC_APID" 2>/dev/null
	for _ in $(seq 100); do alive "$SEC_APID" || break; sleep 0.05; done
	alive "$SEC_APID" && kill -KILL "$SEC_APID" 2>/dev/null
	wait "$SEC_APID" 2>/dev/null
	SEC_APID=
}

# sec_expect NAME RC_CHECK REGEX FILE: PASS when the command's exit status
# satisfies RC_CHECK ("!= 0", "= 125") and FILE matches REGEX.
sec_expect() {
	local name=$1 rc=$2 check=$3 re=$4 file=$5
	# shellcheck disable=SC2086
	if [ "$rc" $check ] && grep -qE "$re" "$file"; then
		result PASS "sec:$name" "$(grep -E "$re" "$file" | head -n 1 | cut -c1-160)"
	else
		result FAIL "sec:$name" "exit $rc (want $check), output: $(head -c 300 "$file" | tr '\n' ' ')" "$file"
	fi
}

sec_impersonation() {
	local vuid auid sock out rc alog=$SEC_DIR/att/attacker.log
	vuid=$(id -u "$SEC_VICTIM")
	auid=$(id -u "$SEC_ATTACKER")
	sock=/tmp/cuvisor-$vuid/cuvisord.sock
	if [ -e "/tmp/cuvisor-$vuid" ]; then
		result FAIL sec:squat "/tmp/cuvisor-$vuid exists already (not ours to remove)"
		return
	fi
	if ! sec_attacker_daemon "$vuid"; then
		result FAIL sec:squat "the attacker's daemon did not start" "$SEC_DIR/attacker.out"
		sec_attacker_stop
		rm -rf "/tmp/cuvisor-$vuid"
		return
	fi
	out=$SEC_DIR/squat-ps.out
	sec_as "$SEC_VICTIM" timeout 20 "$BIN/cuvisor" ps > "$out" 2>&1
	rc=$?
	sec_expect squat-ps "$rc" "!= 0" "refusing the daemon at $sock: its directory /tmp/cuvisor-$vuid is owned by uid $auid" "$out"

	out=$SEC_DIR/squat-guest.log
	sec_as "$SEC_VICTIM" CUVISOR_LOG="error:$SEC_DIR/v/guest.log" \
		LD_LIBRARY_PATH="$ROOT/$O/lib" timeout 30 "$TB/cu_device" \
		> "$out" 2>&1
	rc=$?
	cat "$SEC_DIR/v/guest.log" >> "$out" 2>/dev/null
	sec_expect squat-guest "$rc" "!= 0" "refusing the daemon at $sock.*uid $auid" "$out"

	out=$SEC_DIR/squat-run.out
	sec_as "$SEC_VICTIM" CUVISOR_HOST_KERNELS="$CUVISOR_HOST_KERNELS" \
		timeout 30 "$BIN/cuvisor" run -- "$TB/cu_device" > "$out" 2>&1
	rc=$?
	sec_expect squat-run "$rc" "= 125" "refusing the daemon at $sock.*uid $auid" "$out"
	if grep -qE "tenant [0-9]+ \(" "$alog"; then
		result FAIL sec:squat-no-tenant "the attacker's daemon got a tenant: $(grep -E "tenant [0-9]+ \(" "$alog" | head -n 1)" "$alog"
	else
		result PASS sec:squat-no-tenant "the attacker's daemon got no tenant"
	fi

	# The operator may name it and trust its uid: that still works.
	out=$SEC_DIR/squat-opt-in.out
	sec_as "$SEC_VICTIM" CUVISOR_SOCKET="$sock" CUVISOR_DAEMON_UID="$auid" \
		timeout 20 "$BIN/cuvisor" ps > "$out" 2>&1
	rc=$?
	sec_expect squat-opt-in "$rc" "= 0" "ID" "$out"

	# Without a daemon, the directory stays the attacker's: `cuvisor
	# run` must not start a private daemon in it.
	sec_attacker_stop
	sec_as "$SEC_ATTACKER" rm -f "$sock"
	out=$SEC_DIR/squat-private.out
	sec_as "$SEC_VICTIM" CUVISOR_HOST_KERNELS="$CUVISOR_HOST_KERNELS" \
		timeout 30 "$BIN/cuvisor" run -- "$TB/cu_device" > "$out" 2>&1
	rc=$?
	sec_expect squat-private-dir "$rc" "= 125" "refusing /tmp/cuvisor-$vuid: not a directory owned by us" "$out"
	rm -rf "/tmp/cuvisor-$vuid"
}

# A tenant of the shared daemon (cu_pagecount, 16 MiB); sets SEC_ID.
sec_tenant() {
	SEC_LOG=$SEC_DIR/tenant-$1.log
	OPS_LOG=$SEC_LOG
	timeout 300 "$BIN/cuvisor" run --socket "$SOCK" --mem 128M \
		-- "$TB/cu_pagecount" -t 0 -m 16 -v 4 > "$SEC_LOG" 2>&1 &
	SEC_CLI=$!
	BGPIDS+=("$SEC_CLI")
	if ! wait_line "$SEC_LOG" '^# ready' 60; then
		result FAIL "sec:$1:start" "the tenant did not start" "$SEC_LOG"
		return 1
	fi
	SEC_GPID=$(field "$SEC_LOG" guest_pid)
	SEC_ID=$(timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" 2>/dev/null |
		awk -v p="$SEC_GPID" '$2 == p { print $1 }')
	[ -n "$SEC_ID" ]
}

sec_tenant_end() {
	local rc
	kill -TERM "$SEC_GPID" 2>/dev/null
	wait "$SEC_CLI" 2>/dev/null
	rc=$?
	if [ $rc = 0 ]; then
		result PASS "sec:$1:tenant-checks" "every page right"
	else
		result FAIL "sec:$1:tenant-checks" "exit $rc" "$SEC_LOG"
	fi
}

sec_cli() {
	local out=$1
	shift
	timeout 120 "$BIN/cuvisor" "$@" --socket "$SOCK" > "$out" 2>&1
}

# A process's command line, NULs as spaces.
sec_cmdline() { tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null; }

sec_token_check() {
	local name=$1 wpid=$2 cl
	cl=$(sec_cmdline "$wpid")
	if [ -z "$cl" ]; then
		result FAIL "sec:$name" "no command line for pid $wpid"
	elif echo "$cl" | grep -qE -- '--token( |=)|[0-9a-f]{32}'; then
		result FAIL "sec:$name" "pid $wpid: $(echo "$cl" | cut -c1-300)"
	else
		result PASS "sec:$name" "$(echo "$cl" | grep -oE -- '--token-fd [0-9]+') (pid $wpid)"
	fi
}

sec_images() {
	local img=$SEC_DIR/pub/t.img rc out wpid
	sec_tenant images || return
	wpid=$(field "$SEC_LOG" worker_pid)
	sec_token_check token-not-on-cmdline "$wpid"

	out=$SEC_DIR/image.out
	sec_cli "$out" checkpoint "$SEC_ID" -o "$img"
	rc=$?
	if [ $rc = 0 ] && [ "$(stat -c %a "$img" 2>/dev/null)" = 600 ]; then
		result PASS sec:image-mode "$(stat -c '%a %U' "$img")"
	else
		result FAIL sec:image-mode "exit $rc, mode $(stat -c %a "$img" 2>/dev/null)" "$out"
	fi
	if [ -n "$SEC_ATTACKER" ]; then
		if sec_as "$SEC_ATTACKER" head -c 1 "$img" > /dev/null 2>&1; then
			result FAIL sec:image-unreadable "user $SEC_ATTACKER read $img"
		else
			result PASS sec:image-unreadable "user $SEC_ATTACKER cannot read it"
		fi
	else
		result SKIP sec:image-unreadable "needs root to create a second user"
	fi
	sec_cli "$out" checkpoint "$SEC_ID" -o "$SEC_DIR/pub/m.img" --mode 0640
	rc=$?
	if [ $rc = 0 ] && [ "$(stat -c %a "$SEC_DIR/pub/m.img" 2>/dev/null)" = 640 ]; then
		result PASS sec:image-mode-option "--mode 0640: $(stat -c %a "$SEC_DIR/pub/m.img")"
	else
		result FAIL sec:image-mode-option "exit $rc, mode $(stat -c %a "$SEC_DIR/pub/m.img" 2>/dev/null)" "$out"
	fi
	rm -f "$img" "$SEC_DIR/pub/m.img"

	sec_symlinks

	# The holder of a stopped tenant got the token the same way, and
	# gives it back: restore works.
	sec_cli "$out" checkpoint "$SEC_ID" -o "$img" --stop
	sec_token_check holder-token-not-on-cmdline "$wpid"
	sec_cli "$out" restore "$img"
	rc=$?
	sec_expect holder-restores "$rc" "= 0" "restored from" "$out"
	sec_tenant_end images
}

# Links planted at the output name (by the other user, in a directory it
# may write): refused, nothing goes through them.
sec_symlinks() {
	local drop=$SEC_DIR/drop fifo=$SEC_DIR/fifo out rc reader got
	mkdir -p "$drop"
	chmod 1777 "$drop"
	mkfifo "$fifo"
	chmod 666 "$fifo"
	if [ -n "$SEC_ATTACKER" ]; then
		sec_as "$SEC_ATTACKER" ln -s "$fifo" "$drop/fifo.img"
		sec_as "$SEC_ATTACKER" ln -s /dev/null "$drop/null.img"
		sec_as "$SEC_ATTACKER" ln -s "$SEC_DIR/victim.json" "$drop/r.json"
	else
		ln -s "$fifo" "$drop/fifo.img"
		ln -s /dev/null "$drop/null.img"
		ln -s "$SEC_DIR/victim.json" "$drop/r.json"
	fi
	# A reader on the fifo catches whatever would go through the link.
	timeout 60 cat "$fifo" > "$SEC_DIR/caught" &
	reader=$!
	BGPIDS+=("$reader")
	out=$SEC_DIR/symlink-fifo.out
	sec_cli "$out" checkpoint "$SEC_ID" -o "$drop/fifo.img"
	rc=$?
	# Let the reader go, if it still waits: open and close the fifo
	# read-write ourselves (that never blocks, reader or not).
	: <> "$fifo"
	wait "$reader" 2>/dev/null
	got=$(stat -c %s "$SEC_DIR/caught" 2>/dev/null || echo 0)
	if [ "$got" = 0 ] && [ -L "$drop/fifo.img" ]; then
		sec_expect symlink-to-fifo "$rc" "= 1" "refusing $drop/fifo.img: it is a symbolic link" "$out"
	else
		result FAIL sec:symlink-to-fifo "exit $rc, $got bytes went through the link" "$out"
	fi
	out=$SEC_DIR/symlink-null.out
	sec_cli "$out" checkpoint "$SEC_ID" -o "$drop/null.img"
	rc=$?
	if [ -L "$drop/null.img" ]; then
		sec_expect symlink-to-devnull "$rc" "= 1" "it is a symbolic link" "$out"
	else
		result FAIL sec:symlink-to-devnull "the link was replaced" "$out"
	fi
	out=$SEC_DIR/report-symlink.out
	sec_cli "$out" migrate "$SEC_ID" --report "$drop/r.json"
	rc=$?
	if [ -L "$drop/r.json" ] && [ ! -e "$SEC_DIR/victim.json" ]; then
		sec_expect report-symlink "$rc" "= 1" "refusing $drop/r.json: it is a symbolic link" "$out"
	else
		result FAIL sec:report-symlink "exit $rc; the link was replaced or followed" "$out"
	fi
	rm -rf "$drop" "$fifo" "$SEC_DIR/caught"
}

run_sec() {
	if ! have_cuvisor; then
		result SKIP sec "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_pagecount" ] || [ ! -x "$TB/cu_device" ]; then
		result FAIL sec "test programs missing (make test-programs)"
		return
	fi
	SEC_DIR=$LOGS/sec
	mkdir -p "$SEC_DIR/pub" "$SEC_DIR/v" "$SEC_DIR/att"
	# The other users must reach the paths they try (for a refusal to
	# mean something): $LOGS only searchable, our files readable.
	chmod 711 "$LOGS"
	chmod 755 "$SEC_DIR" "$SEC_DIR/pub"
	if [ "$(id -u)" != 0 ]; then
		result SKIP sec:squat "needs root to create the victim and attacker users"
	elif ! command -v useradd > /dev/null || ! command -v setpriv > /dev/null; then
		result SKIP sec:squat "needs useradd and setpriv"
	elif ! sec_users; then
		result SKIP sec:squat "cannot create users, or they cannot reach $BIN"
		sec_users_remove
	else
		chown "$SEC_VICTIM" "$SEC_DIR/v"
		chown "$SEC_ATTACKER" "$SEC_DIR/att"
		sec_impersonation
	fi
	if ! start_daemon; then
		result FAIL sec:daemon-start "cuvisord did not answer" "$DLOG"
	else
		sec_images
		stop_daemon
	fi
	sec_users_remove
	chmod 700 "$LOGS"
}
