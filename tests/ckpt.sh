# SPDX-License-Identifier: MIT
# The "ckpt" section of tests/run.sh (sourced by it; uses its helpers):
# checkpoint and restore through image files, the daemon's restart with
# running and stopped tenants, every refused image, a full disk, and a
# worker killed during a checkpoint. The tenant is cu_pagecount counting
# rounds in every page of OPS_MIB MiB (64 on the host backend; the GPU
# suite passes several GiB): it checks every page after each operation
# (-v 1 after a restore) and exits 0 only if all were right.

CK_LOG=
CK_ID=
CK_GPID=
CK_CLI=
CK_DIR=

ck_cli() {
	local name=$1
	shift
	timeout 700 "$BIN/cuvisor" "$@" --socket "$SOCK" > "$LOGS/ck-$name.out" 2>&1
}

# ck_tenant NAME [ARGS...]: the tenant (cu_pagecount ARGS), started
# through the shared daemon; sets CK_ID, CK_GPID.
ck_tenant() {
	local name=$1
	CK_LOG=$LOGS/ck-tenant-$1.log
	OPS_LOG=$CK_LOG
	shift
	CUVISOR_LOG=warn:${CK_LOG%.log}.guest.log timeout 900 "$BIN/cuvisor" run \
		--socket "$SOCK" --mem "$((OPS_MIB * 2 + 64))M" -- "$TB/cu_pagecount" \
		-t 0 -m "$OPS_MIB" -v 4 "$@" > "$CK_LOG" 2>&1 &
	CK_CLI=$!
	BGPIDS+=("$CK_CLI")
	if ! wait_line "$CK_LOG" '^# ready' 120; then
		result FAIL "ckpt:$name:start" "the tenant did not start counting" "$CK_LOG"
		return 1
	fi
	CK_GPID=$(field "$CK_LOG" guest_pid)
	if ! CK_ID=$(tenant_of "$CK_GPID"); then
		result FAIL "ckpt:$name:start" "cuvisor ps lists no tenant of pid $CK_GPID" "$LOGS/ps-retries.out"
		return 1
	fi
}

# ck_state_until STATE: 0 once `cuvisor ps` says STATE for CK_ID (an
# empty STATE: no longer lists it), 1 if not within WAIT_S.
ck_state_until() {
	ck_state_now() { [ "$(ops_state "$CK_ID")" = "$1" ]; }
	wait_for "$WAIT_S" ck_state_now "$1"
}

# Ends the tenant; PASS when it found every page right all along.
ck_tenant_end() {
	local name=$1 rc
	kill -TERM "$CK_GPID" 2>/dev/null
	wait "$CK_CLI" 2>/dev/null
	rc=$?
	if [ $rc = 0 ]; then
		result PASS "ckpt:$name:tenant-checks" "$(ops_rounds) rounds, every page right"
	else
		result FAIL "ckpt:$name:tenant-checks" "exit $rc" "$CK_LOG"
	fi
}

ck_restart_daemon() {
	kill -TERM "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DPID=
	start_daemon
}

# ck_run NAME RC REGEX ARGS...: `cuvisor ARGS` must exit RC and say
# something matching REGEX.
ck_run() {
	local name=$1 want=$2 re=$3 rc out=$LOGS/ck-$1.out
	shift 3
	ck_cli "$name" "$@"
	rc=$?
	if [ "$rc" = "$want" ] && grep -qE "$re" "$out"; then
		result PASS "ckpt:$name" "$(grep -E "$re" "$out" | head -n 1 | cut -c1-150)"
		return 0
	fi
	result FAIL "ckpt:$name" "exit $rc (want $want), output: $(head -n 2 "$out" | tr '\n' ' ' | cut -c1-200)" "$DLOG"
	return 1
}

ck_state_is() {
	local name=$1 want=$2 st
	st=$(ops_state "$CK_ID")
	if [ "$st" = "$want" ]; then
		result PASS "ckpt:$name" "cuvisor ps: $st"
	else
		result FAIL "ckpt:$name" "cuvisor ps says '$st', not $want" "$DLOG"
	fi
}

# Checkpoint without --stop, then with --stop; every refused image; the
# daemon restarted while stopped; the right image restores.
ck_images() {
	local rc img=$CK_DIR/t.img old=$CK_DIR/old.img bad
	ck_tenant images || return
	ck_run continue-after-checkpoint 0 "checkpointed to" checkpoint "$CK_ID" -o "$old"
	if ops_moves && [ "$(ops_state "$CK_ID")" = running ]; then
		result PASS ckpt:runs-on "$OPS_DETAIL"
	else
		result FAIL ckpt:runs-on "$OPS_DETAIL" "$CK_LOG"
	fi
	ck_run compressed-checkpoint 0 "checkpointed to" checkpoint "$CK_ID" -o "$CK_DIR/z.img" --compress 3
	ck_run stop 0 "stopped, GPU memory released" checkpoint "$CK_ID" -o "$img" --stop
	ck_state_is stopped-state stopped
	if ops_frozen; then
		result PASS ckpt:stopped-is-frozen "$OPS_DETAIL"
	else
		result FAIL ckpt:stopped-is-frozen "$OPS_DETAIL" "$CK_LOG"
	fi

	# refusals: each names the problem, the tenant stays stopped
	head -c 100 "$img" > "$CK_DIR/short.img"
	ck_run refused-truncated-header 1 "truncated|too short|header" restore "$CK_DIR/short.img"
	head -c $(( $(stat -c %s "$img") / 2 )) "$img" > "$CK_DIR/half.img"
	ck_run refused-truncated 1 "truncated" restore "$CK_DIR/half.img"
	cp "$img" "$CK_DIR/ver.img" && "$TB/img_tool" version "$CK_DIR/ver.img" 2
	ck_run refused-foreign-version 1 "version 2" restore "$CK_DIR/ver.img"
	printf 'hello, not an image at all; really not.........................' > "$CK_DIR/text.img"
	ck_run refused-not-an-image 1 "not a cuvisor image|bad magic|truncated|too short" restore "$CK_DIR/text.img"
	cp "$img" "$CK_DIR/mem.img" && "$TB/img_tool" flip "$CK_DIR/mem.img" 4
	ck_run refused-corrupted-memory 1 "corrupt|checksum" restore "$CK_DIR/mem.img"
	cp "$img" "$CK_DIR/obj.img" && "$TB/img_tool" flip "$CK_DIR/obj.img" 2
	ck_run refused-corrupted-objects 1 "corrupt|checksum" restore "$CK_DIR/obj.img"
	ck_run refused-stale-image 1 "not its latest image" restore "$old"
	ck_run resume-stopped-says-restore 1 "stopped by a checkpoint.*cuvisor restore FILE" resume "$CK_ID"
	ck_state_is still-stopped stopped

	# the daemon restarts: the stopped tenant is adopted, then restored
	if ck_restart_daemon; then
		result PASS ckpt:daemon-restarted
	else
		result FAIL ckpt:daemon-restarted "the new daemon did not answer" "$DLOG"
		return
	fi
	# the new daemon adopts the holder when it reconnects (every 0.1 s)
	ck_state_until stopped
	ck_state_is adopted-stopped stopped
	ck_run restore-after-daemon-restart 0 "restored from" restore "$img"
	ck_state_is restored-running running
	if ops_moves; then
		result PASS ckpt:runs-after-restore "$OPS_DETAIL"
	else
		result FAIL ckpt:runs-after-restore "$OPS_DETAIL" "$CK_LOG"
	fi
	ck_run refused-restored-twice 1 "no stopped tenant|not stopped" restore "$img"
	# the image of a tenant whose program has ended
	bad=$img
	ck_tenant_end images
	ck_state_until ""
	ck_run refused-tenant-gone 1 "no stopped tenant" restore "$bad"
}

# A full disk: the checkpoint fails cleanly, leaves no file, and the
# tenant keeps running. The disk is a 4 MiB tmpfs (root, as in CI); it
# used to be /dev/full too, but an image is now written only to a regular
# file (a root CLI must never write into a device a user named), so
# /dev/full is refused up front and checked for that instead.
ck_full_disk() {
	local mnt=$CK_DIR/small rc
	ck_tenant full || return
	ck_run device-output-refused 1 "not a regular file" checkpoint "$CK_ID" -o /dev/full
	mkdir -p "$mnt"
	if mount -t tmpfs -o size=4m tmpfs "$mnt" 2>/dev/null; then
		ck_run full-disk-tmpfs 1 "does not fit" checkpoint "$CK_ID" -o "$mnt/t.img"
		if [ -z "$(ls -A "$mnt")" ]; then
			result PASS ckpt:full-disk-no-file-left
		else
			result FAIL ckpt:full-disk-no-file-left "$(ls "$mnt")"
		fi
		umount "$mnt"
	else
		result SKIP ckpt:full-disk-tmpfs "cannot mount a small tmpfs here (not root?)"
	fi
	ck_state_is full-disk-still-running running
	if ops_moves; then
		result PASS ckpt:full-disk-runs-on "$OPS_DETAIL"
	else
		result FAIL ckpt:full-disk-runs-on "$OPS_DETAIL" "$CK_LOG"
	fi
	ck_tenant_end full
}

# The daemon restarts under load: the running tenant is adopted and can
# be operated on by the new daemon; its checks stay right.
ck_restart_under_load() {
	ck_tenant load || return
	if ! ck_restart_daemon; then
		result FAIL ckpt:restart-under-load "the new daemon did not answer" "$DLOG"
		return
	fi
	ck_state_until running
	ck_state_is adopted-running running
	if ops_moves; then
		result PASS ckpt:runs-across-restart "$OPS_DETAIL"
	else
		result FAIL ckpt:runs-across-restart "$OPS_DETAIL" "$CK_LOG"
	fi
	ck_run adopted-suspend 0 "suspended" suspend "$CK_ID"
	ck_run adopted-resume 0 "resumed" resume "$CK_ID"
	ck_tenant_end load
}

# kill -9 of the worker during a checkpoint: the checkpoint fails, leaves
# no file, the guest's next call fails with a CUDA error (no hang).
ck_kill_during() {
	local wpid op rc n0
	ck_tenant kill || return
	wpid=$(field "$CK_LOG" worker_pid)
	n0=$(lines_of "$DLOG")
	timeout 120 "$BIN/cuvisor" checkpoint "$CK_ID" -o "$CK_DIR/k.img" \
		--socket "$SOCK" > "$LOGS/ck-kill.out" 2>&1 &
	op=$!
	# the daemon has handed the checkpoint to the worker
	wait_line_after "$DLOG" "$n0" "tenant $CK_ID: checkpoint asked by" "$WAIT_S"
	kill -KILL "$wpid"
	wait "$op"
	rc=$?
	if [ ! -e "$CK_DIR/k.img" ] || [ $rc = 0 ]; then
		result PASS ckpt:killed-checkpoint-returns "exit $rc$([ $rc = 0 ] || echo ', no file')"
	else
		result FAIL ckpt:killed-checkpoint-returns "exit $rc, file left behind" "$LOGS/ck-kill.out"
	fi
	ck_gpid_gone() { ! alive "$CK_GPID"; }
	wait_for "$WAIT_S" ck_gpid_gone
	wait "$CK_CLI" 2>/dev/null
	rc=$?
	if [ $rc != 0 ] && [ $rc != 124 ] && grep -q "CUDA_ERROR" "$CK_LOG"; then
		result PASS ckpt:guest-of-killed-worker-fails "exit $rc with a CUDA error"
	else
		result FAIL ckpt:guest-of-killed-worker-fails "guest exit $rc" "$CK_LOG"
	fi
}

ck_gpu_of() {
	timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" 2>/dev/null |
		awk -v id="$1" '$1 == id { print $3 }'
}

# Evicted, then resumed on the other GPU; suspended, moved back. The
# host backend lists two GPUs here (CUVISOR_HOST_GPUS); on the cuda
# backend this needs a machine with two.
ck_move() {
	local other
	if [ "$BACKEND" = cuda ] &&
	   [ "$(nvidia-smi -L 2>/dev/null | wc -l)" -lt 2 ]; then
		result SKIP ckpt:move "one GPU: resume --gpu needs another"
		return
	fi
	ck_tenant move || return
	other=$(( $(ck_gpu_of "$CK_ID") == 0 ? 1 : 0 ))
	ck_run move-evict 0 "evicted" evict "$CK_ID"
	ck_run move-resume-other-gpu 0 "resumed on gpu $other" resume "$CK_ID" --gpu "$other"
	if [ "$(ck_gpu_of "$CK_ID")" = "$other" ] && ops_moves; then
		result PASS ckpt:moved-runs "gpu $other, $OPS_DETAIL"
	else
		result FAIL ckpt:moved-runs "cuvisor ps gpu $(ck_gpu_of "$CK_ID"), $OPS_DETAIL" "$DLOG"
	fi
	ck_run move-suspend 0 "suspended" suspend "$CK_ID"
	ck_run move-back 0 "resumed on gpu $((1 - other))" resume "$CK_ID" --gpu "$((1 - other))"
	ck_state_is moved-back-running running
	ck_tenant_end move
}

# ck_runs NAME: PASS when the tenant counts on.
ck_runs() {
	if ops_moves; then
		result PASS "ckpt:$1" "$OPS_DETAIL"
	else
		result FAIL "ckpt:$1" "$OPS_DETAIL" "$CK_LOG"
	fi
}

# A tenant whose memory comes from the virtual-memory API (two cuMemCreate
# handles, released while mapped, one of them mapped twice): evicted and
# resumed, then checkpointed with --stop and restored.
ck_vmm() {
	ck_tenant vmm -V || return
	ck_run vmm-evict 0 "evicted" evict "$CK_ID"
	ck_run vmm-resume 0 "resumed" resume "$CK_ID"
	ck_runs vmm-runs-after-evict
	ck_run vmm-checkpoint 0 "checkpointed" checkpoint "$CK_ID" \
		-o "$CK_DIR/vmm.img" --stop
	ck_run vmm-restore 0 "restored" restore "$CK_DIR/vmm.img"
	ck_runs vmm-runs-after-restore
	rm -f "$CK_DIR/vmm.img"
	ck_tenant_end vmm
}

run_ckpt() {
	if ! have_cuvisor; then
		result SKIP ckpt "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_pagecount" ] || [ ! -x "$TB/img_tool" ]; then
		result FAIL ckpt "test programs missing (make test-programs)"
		return
	fi
	CK_DIR=$LOGS/ckpt
	mkdir -p "$CK_DIR"
	[ "$BACKEND" = host ] && export CUVISOR_HOST_GPUS=2
	if ! start_daemon; then
		result FAIL ckpt:daemon-start "cuvisord did not answer" "$DLOG"
		return
	fi
	ck_images
	ck_full_disk
	ck_restart_under_load
	ck_kill_during
	ck_move
	ck_vmm
	if daemon_answers; then
		result PASS ckpt:daemon-answers
	else
		result FAIL ckpt:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
	stop_daemon
	unset CUVISOR_HOST_GPUS
}
