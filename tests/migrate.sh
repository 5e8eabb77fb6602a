# SPDX-License-Identifier: MIT
# The "mig" section of tests/run.sh (sourced by it; uses its helpers and
# those of tests/ckpt.sh): live migration (docs/migration.md).
#
#   mig:ab-*        the A-B test: cu_pagecount counts rounds in every page
#                   of OPS_MIB MiB while it is migrated MIG_TIMES times
#                   (default 6), by turns copying (ab-copy-*: between the
#                   two host GPUs, CUVISOR_HOST_GPUS=2, on the host
#                   backend, or with --copy between two workers on a
#                   machine with one GPU) and sharing its memory with a
#                   second worker on its own GPU (ab-share-*); it keeps
#                   counting after each, and every page is right at the end
#   mig:ab-inline   one more, copying with the bytes inline in the stream
#                   (--inline: no shared slot area, as between hosts)
#   mig:report-*    the JSON reports of both paths parse and
#                   scripts/mig-plot.py draws them
#   mig:fault-*     the destination killed, the stream cut, a record
#                   corrupted, in a pre-copy round and at the stop and
#                   copy, and the same while sharing (share-*): the
#                   command fails and says why, the tenant runs on where
#                   it was, and a migration afterwards works
#   mig:max-rate    --max-rate (4 MB/s per MiB of the tenant, 100..20000):
#                   round 0 takes at least its bytes (less one slot) / the
#                   cap
#   mig:refused-*   an unknown tenant, a GPU that does not exist
#   mig:program-ends-during-migration  the program killed during a
#                   paced copying migration: the command is answered
#   mig:spare-*     the daemon's spare workers: migrations took them, and
#                   a killed spare is replaced
#   mig:blas-*      (cuda backend) a cuBLAS loop migrated mid-run (once
#                   copying, once sharing) prints the digest of a run that
#                   was not migrated

MIG_TIMES=${MIG_TIMES:-6}

mig_other_gpu() {
	local g
	g=$(ck_gpu_of "$CK_ID")
	if [ "$MIG_NGPUS" -ge 2 ]; then
		echo $(( g == 0 ? 1 : 0 ))
	else
		echo "$g"
	fi
}

# mig_go NAME TO ARGS...: `cuvisor migrate CK_ID --gpu TO ARGS`, must
# succeed and the tenant must count on there.
mig_go() {
	local name=$1 to=$2 rc out=$LOGS/mig-$1.out
	shift 2
	timeout 700 "$BIN/cuvisor" migrate "$CK_ID" --gpu "$to" --socket "$SOCK" \
		"$@" > "$out" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "migrated to gpu $to" "$out" &&
	   [ "$(ck_gpu_of "$CK_ID")" = "$to" ] &&
	   [ "$(ops_state "$CK_ID")" = running ] && ops_moves; then
		result PASS "mig:$name" "$(head -n 1 "$out" | cut -c1-150); $OPS_DETAIL"
		return 0
	fi
	result FAIL "mig:$name" "exit $rc, gpu $(ck_gpu_of "$CK_ID"), $(head -n 2 "$out" | tr '\n' ' ' | cut -c1-200) $OPS_DETAIL" "$DLOG"
	return 1
}

# mig_report NAME FILE PYTHON: the report FILE passes the asserts.
mig_report() {
	if python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
sent = sum(x['bytes'] for x in r['rounds'])
assert r['result'] == 'ok', r
assert r['pause_ms'] > 0 and r['total_ms'] >= r['pause_ms'], r
$3
print('%s: %d rounds, %.1f MiB sent, %.1f MiB shared, pause %.2f ms, '
      'stop: %s' % (r['path'], len(r['rounds']), sent / 2**20,
      r['shared_bytes'] / 2**20, r['pause_ms'], r['stop_reason']))" \
		"$2" > "$LOGS/mig-$1.out" 2>&1; then
		result PASS "mig:$1" "$(cat "$LOGS/mig-$1.out")"
	else
		result FAIL "mig:$1" "$(tail -n 1 "$LOGS/mig-$1.out")" "$2"
	fi
	if python3 "$ROOT/scripts/mig-plot.py" "$2" -o "$LOGS/mig-$1.svg" \
		> "$LOGS/mig-$1-plot.out" 2>&1 &&
	   python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' \
		"$LOGS/mig-$1.svg"; then
		result PASS "mig:$1-plot" "$(stat -c %s "$LOGS/mig-$1.svg") bytes of SVG"
	else
		result FAIL "mig:$1-plot" "see the log" "$LOGS/mig-$1-plot.out"
	fi
}

mig_ab() {
	local i
	ck_tenant mig-ab || return
	for i in $(seq 1 "$MIG_TIMES"); do
		if [ $((i % 2)) = 1 ]; then
			mig_go "ab-copy-$i" "$(mig_other_gpu)" --copy \
				--report "$LOGS/mig-report-copy.json"
		else
			mig_go "ab-share-$i" "$(ck_gpu_of "$CK_ID")" \
				--report "$LOGS/mig-report-share.json"
		fi
	done
	# memory this worker imported is shared on again
	mig_go ab-share-again "$(ck_gpu_of "$CK_ID")"
	# the bytes inline in the stream, as between hosts
	mig_go ab-inline "$(mig_other_gpu)" --inline \
		--report "$LOGS/mig-report-inline.json"
	mig_report report-copy "$LOGS/mig-report-copy.json" "
assert r['path'] == 'copy' and r['rounds'][-1]['phase'] == 'stop', r
assert sent >= r['memory_bytes'] and r['shared_bytes'] == 0, r"
	mig_report report-inline "$LOGS/mig-report-inline.json" "
assert r['path'] == 'copy' and sent >= r['memory_bytes'], r"
	mig_report report-share "$LOGS/mig-report-share.json" "
assert r['path'] == 'share' and r['stop_reason'] == 'shared', r
assert sent == 0 and r['shared_bytes'] >= r['memory_bytes'] > 0, r
assert r['rounds'][0]['phase'] == 'map' and r['rounds'][0]['objects'] >= 1, r"
	ck_tenant_end mig-ab
}

# mig_fault KIND@ROUND TO ARGS...: the migration fails, the tenant runs on.
mig_fault() {
	local f=$1 to=$2 name rc out before n0
	shift 2
	name=fault-$([ "$to" = "$(ck_gpu_of "$CK_ID")" ] && [ "$*" != --copy ] &&
		echo share-)${f//@/-at-}
	out=$LOGS/mig-$name.out
	before=$(ck_gpu_of "$CK_ID")
	n0=$(grep -c "injecting fault" "$DLOG")
	timeout 700 "$BIN/cuvisor" migrate "$CK_ID" --gpu "$to" "$@" \
		--socket "$SOCK" --fault "$f" --report "$LOGS/mig-$name.json" \
		> "$out" 2>&1
	rc=$?
	# The fault struck (the source logged it), the command failed.
	if [ $rc = 1 ] && grep -qE "migrate.*:" "$out" &&
	   [ "$(grep -c "injecting fault" "$DLOG")" -gt "$n0" ] &&
	   [ "$(ck_gpu_of "$CK_ID")" = "$before" ] &&
	   [ "$(ops_state "$CK_ID")" = running ] && ops_moves; then
		result PASS "mig:$name" "$(head -n 1 "$out" | cut -c1-160); runs on, $OPS_DETAIL"
	else
		result FAIL "mig:$name" "exit $rc, gpu $(ck_gpu_of "$CK_ID") (was $before), $(head -n 2 "$out" | tr '\n' ' ' | cut -c1-200) $OPS_DETAIL" "$DLOG"
	fi
}

# The pids of this run's daemon's workers that serve a tenant (alive,
# not yet reaped ones aside), one per line: not its idle spares. A spare
# keeps its command line (--spare) when a migration takes it; the
# daemon's log says which ones were taken. A spare that the daemon is
# still starting is a spare too. Other runs' workers are not counted.
mig_tenant_workers() {
	local p
	for p in $(our_workers); do
		alive "$p" || continue
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null |
			grep -q -- " --spare " &&
		! grep -q "the spare worker pid $p on" "$DLOG" && continue
		echo "$p"
	done
}

mig_workers() { mig_tenant_workers | wc -l; }

mig_faults() {
	local f i rate
	ck_tenant mig-faults || return
	for f in kill-dest@1 cut@1 corrupt@0 corrupt@1 kill-dest@stop cut@stop corrupt@stop; do
		mig_fault "$f" "$(mig_other_gpu)" --copy
	done
	for f in kill-dest@0 cut@0 corrupt@0 kill-dest@stop cut@stop corrupt@stop; do
		mig_fault "$f" "$(ck_gpu_of "$CK_ID")"
	done
	mig_go after-faults "$(mig_other_gpu)" --copy
	mig_go after-faults-share "$(ck_gpu_of "$CK_ID")"
	# --max-rate: round 0 moves everything no faster than the cap (a
	# chunk of 8 MiB may start each 8 MiB / rate; about 0.3 s in all,
	# at most 20 GB/s, under what the link does)
	rate=$(( OPS_MIB * 4 < 100 ? 100 : OPS_MIB * 4 > 20000 ? 20000 : OPS_MIB * 4 ))
	mig_go max-rate "$(mig_other_gpu)" --copy --max-rate "$rate" \
		--report "$LOGS/mig-rate.json" &&
	mig_report rate-report "$LOGS/mig-rate.json" "
r0 = r['rounds'][0]
assert r['max_rate_mbs'] == $rate and r0['phase'] == 'pre-copy', r
assert r0['bytes'] >= r['memory_bytes'], r
assert r0['ms'] >= (r0['bytes'] - 8 * 2**20) / ($rate * 1e6) * 1e3, (r0, 'faster than the cap')"
	# Every destination of a failed migration went away, and every
	# source of a successful one: the tenant's worker is the only one.
	mig_one_worker() { [ "$(mig_workers)" = 1 ]; }
	if wait_for "$WAIT_S" mig_one_worker; then
		result PASS mig:no-leftover-workers "only the tenant's worker runs"
	else
		result FAIL mig:no-leftover-workers "$(for p in $(mig_tenant_workers); do tr '\0' ' ' < "/proc/$p/cmdline"; echo ";"; done)" "$DLOG"
	fi
	ck_tenant_end mig-faults
}

# The A-B test's migrations took spares (the daemon keeps one started
# worker per GPU); a spare killed is replaced by a new one.
mig_spare() {
	local n pid new i
	n=$(grep -c "the spare worker pid [0-9]* on gpu [0-9]* takes it" "$DLOG")
	if [ "$n" -ge 1 ]; then
		result PASS mig:spare-taken "$n migrations took a spare worker"
	else
		result FAIL mig:spare-taken "no migration took a spare" "$DLOG"
	fi
	# gpu 0's spare, once ready: the last one the log says is ready,
	# if it still runs (a migration may have taken it since)
	mig_spare_ready() {
		pid=$(grep -o "gpu 0: spare worker pid [0-9]* ready" "$DLOG" |
			tail -1 | awk '{ print $6 }')
		[ -n "$pid" ] && alive "$pid" &&
			! grep -q "the spare worker pid $pid on" "$DLOG"
	}
	if ! wait_for "$WAIT_S" mig_spare_ready; then
		result FAIL mig:spare-replaced "no spare ready on gpu 0" "$DLOG"
		return
	fi
	kill -KILL "$pid"
	mig_spare_new() {
		new=$(grep -o "gpu 0: spare worker pid [0-9]* ready" "$DLOG" |
			tail -1 | awk '{ print $6 }')
		[ -n "$new" ] && [ "$new" != "$pid" ]
	}
	if wait_for "$WAIT_S" mig_spare_new; then
		result PASS mig:spare-replaced "spare pid $pid killed, pid $new ready"
	else
		result FAIL mig:spare-replaced "spare pid $pid killed, none ready after $WAIT_S s" "$DLOG"
	fi
}

mig_refused() {
	ck_run mig-refused-unknown 1 "no such tenant" migrate 999999
	ck_tenant mig-refused || return
	ck_run mig-refused-no-gpu 1 "no gpu 37" migrate "$CK_ID" --gpu 37
	ck_tenant_end mig-refused
}

# The program killed during a paced copying migration: its worker ends
# (and so does the destination's stream); the command must still get an
# answer. (The daemon freed the source's record when its worker was
# reaped before the destination failed, and nobody answered the client:
# `cuvisor migrate` hung.)
mig_program_ends() {
	local out=$LOGS/mig-program-ends.out mpid n0 rc
	ck_tenant mig-program-ends || return
	n0=$(lines_of "$DLOG")
	# OPS_MIB at 20 MB/s: seconds of pre-copy to kill the program in
	timeout 120 "$BIN/cuvisor" migrate "$CK_ID" --gpu "$(mig_other_gpu)" \
		--copy --max-rate 20 --socket "$SOCK" > "$out" 2>&1 &
	mpid=$!
	wait_line_after "$DLOG" "$n0" "tenant $CK_ID: migrating from" "$WAIT_S"
	kill -KILL "$CK_GPID"
	wait "$mpid"
	rc=$?
	wait "$CK_CLI" 2>/dev/null
	if [ $rc = 1 ] && grep -q "migrate" "$out"; then
		result PASS mig:program-ends-during-migration "$(head -n 1 "$out" | cut -c1-160)"
	else
		result FAIL mig:program-ends-during-migration "exit $rc (124: no answer): $(head -n 1 "$out")" "$DLOG"
	fi
}

# A cuBLAS loop migrated twice mid-run: the same digest as natively.
mig_blas() {
	local p=$TB/rt/blas_loop log=$LOGS/mig-blas.log nat=$LOGS/mig-blas-native.log
	local cli i id want got ok
	if [ "$BACKEND" != cuda ]; then
		result SKIP mig:blas "cuBLAS kernels need the cuda backend"
		return
	fi
	if [ ! -x "$p" ]; then
		result SKIP mig:blas "no $p (make rt-programs needs nvcc)"
		return
	fi
	timeout 300 "$p" 600000 > "$nat" 2>&1
	want=$(awk '$2 == "digest" { print $3, $4 }' "$nat" | tr '\n' ' ')
	timeout 600 "$BIN/cuvisor" run --socket "$SOCK" --mem 2G -- "$p" 600000 > "$log" 2>&1 &
	cli=$!
	BGPIDS+=("$cli")
	if ! wait_line "$log" '^# ready' 120; then
		result FAIL mig:blas-start "the cuBLAS loop did not start" "$log"
		return
	fi
	id=$(tenant_of "$(field "$log" guest_pid)")
	ok=0
	for i in 1 2; do
		# once copying, once sharing
		if timeout 300 "$BIN/cuvisor" migrate "$id" --socket "$SOCK" \
			$([ $i = 1 ] && echo --copy) \
			> "$LOGS/mig-blas-$i.out" 2>&1; then
			result PASS "mig:blas-migrate-$i" "$(head -n 1 "$LOGS/mig-blas-$i.out")"
			ok=$((ok + 1))
		else
			result FAIL "mig:blas-migrate-$i" "$(head -n 1 "$LOGS/mig-blas-$i.out")" "$DLOG"
		fi
	done
	# Only a run that was migrated twice before it ended counts.
	kill -0 "$cli" 2>/dev/null || ok=0
	wait "$cli"
	got=$(awk '$2 == "digest" { print $3, $4 }' "$log" | tr '\n' ' ')
	if [ $ok = 2 ] && [ -n "$want" ] && [ "$want" = "$got" ]; then
		result PASS mig:blas-identical "$got"
	else
		result FAIL mig:blas-identical "native '$want', migrated ($ok of 2, before the end) '$got'" "$log"
	fi
}

run_mig() {
	if ! have_cuvisor; then
		result SKIP mig "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_pagecount" ]; then
		result FAIL mig "test programs missing (make test-programs)"
		return
	fi
	MIG_NGPUS=1
	if [ "$BACKEND" = host ]; then
		export CUVISOR_HOST_GPUS=2
		MIG_NGPUS=2
	else
		MIG_NGPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
	fi
	if ! start_daemon; then
		result FAIL mig:daemon-start "cuvisord did not answer" "$DLOG"
		return
	fi
	mig_ab
	mig_spare
	mig_faults
	mig_refused
	mig_program_ends
	mig_blas
	if daemon_answers; then
		result PASS mig:daemon-answers
	else
		result FAIL mig:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
	stop_daemon
	unset CUVISOR_HOST_GPUS
}
