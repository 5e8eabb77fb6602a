#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The CI suite (`make test` builds, then runs this). Needs no GPU.
#
#   tests/run.sh [--backend host|cuda] [--only LIST] [--keep]
#
# Sections (LIST is a comma-separated subset; default: all of them):
#   unit     every test_* executable in build/tests/ (exit 77 = skipped)
#   e2e      every build/tests/cu_* program under `cuvisor run` (a private
#            daemon each, as a user would start it), --mem 1G
#   kill     a guest killed with SIGKILL while it streams work: its worker
#            exits within 1 s, the daemon still answers, another tenant
#            works
#   garbage  guests that write random bytes over their shared region while
#            another tenant works: every call returns, the worker exits
#            without crashing (status 0 or 3 in the daemon log), the other
#            tenant's results stay right, the daemon still answers
#   san      the ring test rebuilt with SAN=asan (build-asan/) and
#            SAN=tsan (build-tsan/), the decoder, allocator, revocation,
#            image, digest and migration stream tests with SAN=asan, the
#            image and migration stream tests with TSan
#   fuzz     each libFuzzer harness (decoder, control messages, image
#            reader, restore) for FUZZ_SMOKE_S seconds (default 20), the
#            migration stream's for FUZZ_MIG_S (default 5)
#   rt       every CUDA runtime program build/tests/rt/* (nvcc-built,
#            tests/rt/) under `cuvisor run`, like e2e; those named in
#            CV_RT_XFAIL (comma-separated; default below) fail as XFAIL
#   ops      `cuvisor suspend`, `resume` and `evict` of a tenant of a
#            shared daemon that counts rounds in every page of 64 MiB
#            (cu_pagecount), 3 times suspend/resume and evict/resume: `ps`
#            shows each state, no progress while suspended or evicted,
#            progress after resume, every page right at the end (exit 0);
#            an unknown tenant and resuming a running one fail clearly
#   crowd    tests/survive.sh: CROWD_N (default 40) counting tenants
#            started at once through one daemon: none lost, none taken
#            for a corrupted region, every page right
#   ckpt     tests/ckpt.sh: checkpoint to a file and go on, checkpoint
#            --stop, every refused image (truncated, corrupted, foreign
#            version, not an image, stale, restored twice, tenant gone),
#            restore after a daemon restart, a full disk, the daemon
#            restarted under load (tenant adopted), kill -9 of the worker
#            during a checkpoint. OPS_MIB (default 64) sizes the tenant.
#   mig      tests/migrate.sh: live migration back and forth under the
#            counting tenant (the A-B test), its report and plot, the
#            destination killed, the stream cut or corrupted (the tenant
#            runs on), refusals; on the cuda backend a cuBLAS loop
#            migrated mid-run gives the digest of an unmigrated run
#   survive  tests/survive.sh: the kill matrix: the CLI or the daemon
#            killed (SIGTERM, SIGKILL) while a checkpoint --stop or an
#            evict is under way; the tenant is recovered (restore,
#            resume) and every page is right
#   peer     tests/remote.sh: the TCP link between two daemons (loopback):
#            authentication, a wrong key, a key file others may read,
#            bytes that are no HELLO
#   limits   tests/limits.sh: idle TCP connections held to the peer port
#            from one address and from 200 (a real peer still gets in);
#            as root, a throwaway user holding 1,100 idle control
#            connections (64 taken, the rest refused with the reason,
#            root's ps answers, the idle ones closed after 10 s) and a
#            disallowed one flooding connects for 10 s (the log grows by
#            a few KB)
#   netns    tests/netns.sh: the same link between two daemons in two
#            network namespaces joined by a veth pair (needs root):
#            both ways, isolation, a wrong key, the link set down and up;
#            remote vGPUs (`run --host`), the link cut under one, a wrong
#            key, migration to the other host and back (A-B test), the
#            link cut during one
#   rloop    tests/netns.sh: the remote vGPU tests over loopback (no
#            namespaces; with --backend cuda, two daemons on one GPU)
#   sec      tests/sec.sh: a second user (created by the test; needs
#            root, else SKIP) squats the victim's /tmp/cuvisor-UID/ with
#            its daemon: ps, a guest and `run` refuse it by name;
#            images are 0600 (--mode changes it) and unreadable to
#            others; a planted symlink to a fifo or /dev/null is refused
#            as a checkpoint or report output; no worker's or holder's
#            command line holds its token
#   admit    tests/admit.sh: `cuvisor run` against a daemon that refuses:
#            quotas past the GPU's memory (the reason, from cuvisor run
#            and from the guest library), --backend of another backend, a
#            stale socket (no daemon), a throwaway user refused by the
#            socket's mode and by uid (needs root), --fallback-private
#   holder   tests/holder.sh: a stopped tenant's holder and its waiting
#            program, their daemon killed: under 2 % of a core and few
#            wakeups; the daemon restarted adopts it, the image restores
#
# Prints one line per test: PASS|FAIL|SKIP NAME [(detail)], the tail of
# the log after a failure, and last exactly one line
# "N passed, N failed, N skipped". Exits 1 if anything failed.
# Logs are kept (and their directory printed) when something failed, or
# always with --keep. Environment: O (build dir, default build), MAKE,
# WAIT_S (the deadline of every wait for a condition, default 60 s).
set -u
cd "$(dirname "$0")/.." || exit 2

O=${O:-build}
MAKE=${MAKE:-make}
BACKEND=host
ONLY=unit,e2e,kill,garbage,san,fuzz,rt,ops,crowd,ckpt,mig,survive,peer,limits,netns,rloop,sec,admit,holder
KEEP=0
MEM=1G
MEM_BYTES=1073741824
UNIT_TIMEOUT=300
E2E_TIMEOUT=60
# The deadline of a wait for a condition (a tenant listed, a worker's
# exit, a log line, progress). A wait ends as soon as its condition
# holds, so this only bounds a failure: generous, since CI runs on 2
# cores beside other CPU-bound work.
WAIT_S=${WAIT_S:-60}

while [ $# -gt 0 ]; do
	case $1 in
	--backend) BACKEND=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h|--help) sed -n '4,200p' "$0" | sed '/^$/q'; exit 0 ;;
	*) echo "tests/run.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
case $BACKEND in host|cuda) ;; *) echo "tests/run.sh: --backend host|cuda" >&2; exit 2 ;; esac

ROOT=$PWD
BIN=$ROOT/$O/bin
TB=$ROOT/$O/tests
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-tests.XXXXXX") || exit 2
chmod 700 "$LOGS"
NPASS=0 NFAIL=0 NSKIP=0
BGPIDS=()
GUEST=
DPID=
SOCK=$LOGS/d.sock
DLOG=$LOGS/cuvisord.log

want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

# result STATUS NAME [DETAIL] [LOGFILE]
result() {
	local st=$1 name=$2 detail=${3:-} log=${4:-}
	echo "$st $name${detail:+ ($detail)}"
	case $st in
	PASS) NPASS=$((NPASS + 1)) ;;
	SKIP) NSKIP=$((NSKIP + 1)) ;;
	*) NFAIL=$((NFAIL + 1))
	   if [ -n "$log" ] && [ -s "$log" ]; then
		   grep -E '^(not ok|Bail out)|^#   ' "$log" | head -20 | sed 's/^/    | /'
		   echo "    | ... last lines of $log:"
		   tail -n 8 "$log" | sed 's/^/    | /'
		   # what the guest library logged (guest, ck_tenant)
		   tail -n 4 "${log%.*}.guest.log" 2>/dev/null |
			   sed 's/^/    | guest: /'
	   fi ;;
	esac
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS CMD...: 0 as soon as CMD succeeds, 1 if it did not
# within SECONDS.
wait_for() {
	local end=$(( $(now_ms) + $1 * 1000 ))
	shift
	while :; do
		"$@" && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# tenant_of GPID [SOCKET]: the ID that `cuvisor ps` (of the daemon at
# SOCKET, default SOCK) lists for the program of pid GPID, printed once
# it lists it; 1 (and each failed listing in $LOGS/ps-retries.out) if it
# does not within WAIT_S.
tenant_of() {
	local s=${2:-$SOCK} out id end=$(( $(now_ms) + WAIT_S * 1000 ))
	while :; do
		out=$(timeout 30 "$BIN/cuvisor" ps --socket "$s" 2>&1)
		id=$(echo "$out" | awk -v p="$1" '$2 == p { print $1; exit }')
		[ -n "$id" ] && echo "$id" && return 0
		echo "$(date +%T.%N) pid $1 not listed by $s: $out" \
			>> "$LOGS/ps-retries.out"
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# True while pid exists and is not a zombie.
alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ]
}

cleanup() {
	local p
	for p in "${BGPIDS[@]}"; do
		alive "$p" && kill -KILL "$p" 2>/dev/null
	done
	stop_daemon
	# throwaway users of the limits and sec sections, if cut short
	declare -F lim_userdel > /dev/null && lim_userdel
	declare -F sec_users_remove > /dev/null && sec_users_remove
	if [ "$NFAIL" -eq 0 ] && [ "$KEEP" -eq 0 ]; then
		rm -rf "$LOGS"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The environment every guest and daemon of this run gets.
export CVT_EXPECT_MEM=$MEM_BYTES
if [ "$BACKEND" = host ]; then
	export CUVISOR_HOST_KERNELS=$TB/libtestkernels.so
else
	unset CUVISOR_HOST_KERNELS
fi
# No daemon from outside this run is used: `cuvisor run` finds none at
# this socket and starts a private one.
export CUVISOR_SOCKET=$LOGS/none.sock

have_cuvisor() {
	[ -x "$BIN/cuvisor" ] && [ -x "$BIN/cuvisord" ] &&
		[ -x "$BIN/cuvisor-vgpu" ] && [ -r "$ROOT/$O/lib/libcuda.so.1" ]
}

# ---- unit tests ------------------------------------------------------

run_unit() {
	local t name rc found=0
	for t in "$TB"/test_*; do
		[ -f "$t" ] && [ -x "$t" ] || continue
		case $t in *.o|*.d|*.so) continue ;; esac
		found=1
		name=unit:$(basename "$t")
		timeout "$UNIT_TIMEOUT" "$t" > "$LOGS/$(basename "$t").log" 2>&1
		rc=$?
		case $rc in
		0) result PASS "$name" ;;
		77) result SKIP "$name" "the test skipped itself" ;;
		124) result FAIL "$name" "timed out after ${UNIT_TIMEOUT}s" "$LOGS/$(basename "$t").log" ;;
		*) result FAIL "$name" "exit $rc" "$LOGS/$(basename "$t").log" ;;
		esac
	done
	[ $found = 1 ] || result SKIP unit "no test_* programs in $TB (make test-programs)"
}

# ---- end-to-end programs ----------------------------------------------

run_e2e() {
	local p name rc log
	if ! have_cuvisor; then
		result SKIP e2e "cuvisor is not built ($BIN, $O/lib)"
		return
	fi
	for p in "$TB"/cu_*; do
		[ -f "$p" ] && [ -x "$p" ] || continue
		name=$(basename "$p")
		case $name in cu_streamer|cu_garbage) continue ;; esac
		log=$LOGS/$name.log
		timeout "$E2E_TIMEOUT" "$BIN/cuvisor" run --backend "$BACKEND" \
			--mem "$MEM" -- "$p" > "$log" 2>&1
		rc=$?
		case $rc in
		0) result PASS "e2e:$name" ;;
		77) result SKIP "e2e:$name" "the program skipped itself" ;;
		124) result FAIL "e2e:$name" "timed out after ${E2E_TIMEOUT}s" "$log" ;;
		*) result FAIL "e2e:$name" "exit $rc" "$log" ;;
		esac
	done
	run_nodaemon
}

# No daemon reachable: cuInit fails at once with a clear message, and the
# program is not hung.
run_nodaemon() {
	local log=$LOGS/nodaemon.log t0 t1 rc
	t0=$(date +%s%N)
	CUVISOR_SOCKET=$LOGS/nobody.sock CUVISOR_LOG=error \
		LD_LIBRARY_PATH=$ROOT/$O/lib timeout 20 "$TB/cu_device" \
		> "$log" 2>&1
	rc=$?
	t1=$(date +%s%N)
	if [ $rc != 0 ] && [ $rc != 124 ] &&
	   grep -q "no cuvisor daemon at $LOGS/nobody.sock" "$log"; then
		result PASS e2e:no-daemon "$(( (t1 - t0) / 1000000 )) ms"
	else
		result FAIL e2e:no-daemon "exit $rc" "$log"
	fi
}

# ---- a shared daemon for the multi-tenant tests ------------------------

start_daemon() {
	local i
	[ -n "$DPID" ] && return 0
	"$BIN/cuvisord" --socket "$SOCK" --backend "$BACKEND" \
		--log "info:$DLOG" > "$LOGS/cuvisord.out" 2>&1 &
	DPID=$!
	daemon_up() {
		"$BIN/cuvisor" ps --socket "$SOCK" > /dev/null 2>&1 ||
			{ alive "$DPID" || return 0; return 1; }
	}
	wait_for "$WAIT_S" daemon_up && "$BIN/cuvisor" ps --socket "$SOCK" \
		> /dev/null 2>&1
}

# Workers of this run's daemon (their command line names its socket,
# unique to this run), alive or not yet reaped; what else runs on the
# machine is not ours.
our_workers() {
	local p
	for p in $(pgrep -x cuvisor-vgpu); do
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null |
			grep -qF -- "--daemon-socket $SOCK " && echo "$p"
	done
}

stop_daemon() {
	local i
	[ -n "$DPID" ] || return 0
	timeout 60 "$BIN/cuvisor" shutdown --socket "$SOCK" > /dev/null 2>&1
	daemon_gone() { ! alive "$DPID"; }
	if ! wait_for "$WAIT_S" daemon_gone; then
		kill -TERM "$DPID" 2>/dev/null
		wait_for 10 daemon_gone || kill -KILL "$DPID" 2>/dev/null
	fi
	wait "$DPID" 2>/dev/null
	DPID=
	# Workers a killed daemon left behind (they would go on serving, or
	# reconnecting to a socket no one answers): ours only.
	for i in $(our_workers); do
		kill -KILL "$i" 2>/dev/null
	done
}

daemon_answers() { timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" > "$LOGS/ps.out" 2>&1; }

# guest LOG ARGS...: starts a guest of the shared daemon in the
# background; its `cuvisor run` pid is left in GUEST.
guest() {
	local log=$1
	shift
	# the guest library logs its warnings and errors beside the output
	CUVISOR_LOG=warn:${log%.log}.guest.log timeout 600 "$BIN/cuvisor" run \
		--socket "$SOCK" --mem "${GUEST_MEM:-256M}" -- "$@" > "$log" 2>&1 &
	GUEST=$!
	BGPIDS+=("$GUEST")
}

# wait_line FILE REGEX SECONDS
wait_line() {
	local i
	for i in $(seq 1 $(($3 * 20))); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# wait_line_after FILE N REGEX SECONDS: as wait_line, in the lines of
# FILE after its first N (a daemon's log goes on across restarts).
wait_line_after() {
	local end=$(( $(now_ms) + $4 * 1000 ))
	while :; do
		tail -n +$(($2 + 1)) "$1" 2>/dev/null | grep -qE "$3" && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# The number of lines of FILE (0 if there is none).
lines_of() { cat "$1" 2>/dev/null | wc -l; }

field() { awk -v k="$2" '$1 == "#" && $2 == k { print $3; exit }' "$1"; }

# How the daemon logged worker pid $1's end: "0", "3", "signal N", or "".
worker_end() {
	local l
	l=$(grep -E "worker pid $1 (exited with status|killed by signal)" "$DLOG" 2>/dev/null | tail -n 1)
	case $l in
	*"exited with status "*) echo "${l##*exited with status }" ;;
	*"killed by signal "*) echo "signal ${l##*killed by signal }" ;;
	esac
}

# wait_worker_end PID: worker_end once the daemon logged it (WAIT_S at
# most); empty if it did not.
wait_worker_end() {
	local end=$(( $(now_ms) + WAIT_S * 1000 )) e
	while :; do
		e=$(worker_end "$1")
		[ -n "$e" ] && echo "$e" && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# MiB of GPU memory that nvidia-smi lists for pid, or nothing.
gpu_mem_of() {
	nvidia-smi --query-compute-apps=pid,used_memory \
		--format=csv,noheader,nounits 2>/dev/null |
		awk -F', *' -v p="$1" '$1 == p { print $2 }'
}

run_kill() {
	local cli gpid wpid t0 t1 gone=0 rc end
	local log=$LOGS/kill-victim.log
	guest "$log" "$TB/cu_streamer" -t 0
	cli=$GUEST
	if ! wait_line "$log" '^# ready' "$WAIT_S"; then
		result FAIL kill:start "the victim did not start streaming" "$log"
		return
	fi
	gpid=$(field "$log" guest_pid)
	wpid=$(field "$log" worker_pid)
	if [ -z "$wpid" ] || [ "$wpid" = 0 ] || ! alive "$wpid"; then
		result FAIL kill:start "no worker pid (region not at CV_REGION_ADDR?)" "$log"
		kill -KILL "$gpid" 2>/dev/null
		return
	fi
	local gpu_before= gpu_check=0
	if [ "$BACKEND" = cuda ] && command -v nvidia-smi > /dev/null; then
		gpu_check=1
		gpu_before=$(gpu_mem_of "$wpid")
	fi
	t0=$(now_ms)
	kill -KILL "$gpid"
	while [ $(( $(now_ms) - t0 )) -lt $((WAIT_S * 1000)) ]; do
		alive "$wpid" || { gone=1; break; }
		sleep 0.01
	done
	t1=$(( $(now_ms) - t0 ))
	if [ $gone = 1 ] && [ $t1 -le 1000 ]; then
		result PASS kill:worker-exits "${t1} ms"
	elif [ $gone = 1 ]; then
		result FAIL kill:worker-exits "took ${t1} ms, limit 1000" "$DLOG"
	else
		result FAIL kill:worker-exits "worker $wpid still alive after $WAIT_S s" "$DLOG"
	fi
	# On a GPU: the worker held device memory, and none is left with it.
	if [ $gpu_check = 1 ] && [ -z "$gpu_before" ]; then
		result SKIP kill:gpu-memory-released \
			"nvidia-smi lists no process memory here"
	elif [ -n "$gpu_before" ]; then
		sleep 0.5
		if [ "$(gpu_mem_of "$wpid")" = "" ]; then
			result PASS kill:gpu-memory-released "$gpu_before MiB before"
		else
			result FAIL kill:gpu-memory-released \
				"$(gpu_mem_of "$wpid") MiB still held"
		fi
	fi
	wait "$cli" 2>/dev/null
	rc=$?
	[ $rc = 137 ] || echo "    (cuvisor run exited $rc, expected 137)"
	end=$(wait_worker_end "$wpid")
	case $end in
	signal*) result FAIL kill:worker-no-crash "worker $wpid: $end" "$DLOG" ;;
	*) result PASS kill:worker-no-crash "${end:+status $end}" ;;
	esac
	if daemon_answers; then
		result PASS kill:daemon-answers
	else
		result FAIL kill:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
	log=$LOGS/kill-next.log
	timeout 60 "$BIN/cuvisor" run --socket "$SOCK" --mem 256M -- \
		"$TB/cu_streamer" -t 1 > "$log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then
		result PASS kill:next-tenant-works
	else
		result FAIL kill:next-tenant-works "exit $rc" "$log"
	fi
}

run_garbage() {
	local other olog=$LOGS/garbage-other.log log wpid rc end i part seed
	local -a extra
	guest "$olog" "$TB/cu_streamer" -t 8
	other=$GUEST
	if ! wait_line "$olog" '^# ready' "$WAIT_S"; then
		result FAIL garbage:other-tenant "did not start" "$olog"
		return
	fi
	i=0
	# PART[+c]: which part of the region; +c scribbles concurrently.
	for part in all ctl ring replies ring+c all+c replies+c all; do
		i=$((i + 1))
		seed=$((0x5eed0000 + i))
		log=$LOGS/garbage-$i.log
		extra=()
		[ "${part%+c}" != "$part" ] && extra=(-c -r 100)
		timeout 90 "$BIN/cuvisor" run --socket "$SOCK" --mem 256M -- \
			"$TB/cu_garbage" -s "$seed" -p "${part%+c}" "${extra[@]}" \
			> "$log" 2>&1
		rc=$?
		wpid=$(field "$log" worker_pid)
		case $rc in
		0) result PASS "garbage:$part:$i:guest" "seed $seed" ;;
		124) result FAIL "garbage:$part:$i:guest" "hung (timeout), seed $seed" "$log" ;;
		*) result FAIL "garbage:$part:$i:guest" "exit $rc, seed $seed" "$log" ;;
		esac
		if [ -z "$wpid" ] || [ "$wpid" = 0 ]; then
			result SKIP "garbage:$part:$i:worker" "no worker pid"
			continue
		fi
		end=$(wait_worker_end "$wpid")
		case $end in
		0|3) result PASS "garbage:$part:$i:worker" "exit status $end" ;;
		"") if alive "$wpid"; then
			result FAIL "garbage:$part:$i:worker" "worker $wpid still running $WAIT_S s after its guest" "$DLOG"
		    else
			result FAIL "garbage:$part:$i:worker" "no exit record for worker $wpid" "$DLOG"
		    fi ;;
		*) result FAIL "garbage:$part:$i:worker" "worker $wpid: $end" "$DLOG" ;;
		esac
	done
	wait "$other" 2>/dev/null
	rc=$?
	if [ $rc = 0 ]; then
		result PASS garbage:other-tenant-kept-working
	else
		result FAIL garbage:other-tenant-kept-working "exit $rc" "$olog"
	fi
	if daemon_answers; then
		result PASS garbage:daemon-answers
	else
		result FAIL garbage:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
}

run_multi() {
	if ! have_cuvisor; then
		want kill && result SKIP kill "cuvisor is not built"
		want garbage && result SKIP garbage "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_streamer" ] || [ ! -x "$TB/cu_garbage" ]; then
		result FAIL kill/garbage "test programs missing (make test-programs)"
		return
	fi
	if ! start_daemon; then
		result FAIL daemon:start "cuvisord did not answer" "$DLOG"
		return
	fi
	want kill && run_kill
	want garbage && run_garbage
	stop_daemon
}

# ---- suspend, resume, evict ----------------------------------------------

OPS_ID=
OPS_LOG=
OPS_DETAIL=
OPS_MIB=${OPS_MIB:-64}

# ops_cli NAME ARGS...: `cuvisor ARGS --socket $SOCK`, its output in
# $LOGS/ops-NAME.out; its exit status. Evicting may take long.
ops_cli() {
	local name=$1
	shift
	timeout 700 "$BIN/cuvisor" "$@" --socket "$SOCK" > "$LOGS/ops-$name.out" 2>&1
}

# The STATE column of `cuvisor ps` for tenant $1.
ops_state() {
	timeout 10 "$BIN/cuvisor" ps --socket "$SOCK" 2>/dev/null |
		awk -v id="$1" '$1 == id { print $5 }'
}

# The last "# rounds N" the counting tenant printed.
ops_rounds() {
	awk '$1 == "#" && $2 == "rounds" { n = $3 } END { print n + 0 }' "$OPS_LOG"
}

# No round for 1 s. First the round that was under way when the
# operation returned may still be printed (its program may not have been
# scheduled yet on a loaded machine): the count must settle, unchanged
# for 0.3 s, within 10 s; then it must not move for 1 s.
ops_frozen() {
	local a b end=$(( $(now_ms) + 10000 ))
	a=$(ops_rounds)
	while :; do
		sleep 0.3
		b=$(ops_rounds)
		[ "$a" = "$b" ] && break
		if [ "$(now_ms)" -ge "$end" ]; then
			OPS_DETAIL="rounds still going after 10 s: $a -> $b"
			return 1
		fi
		a=$b
	done
	sleep 1
	b=$(ops_rounds)
	OPS_DETAIL="rounds $a -> $b in 1 s"
	[ "$a" = "$b" ]
}

# A new round within WAIT_S.
ops_moves() {
	local a b end=$(( $(now_ms) + WAIT_S * 1000 ))
	a=$(ops_rounds)
	while :; do
		b=$(ops_rounds)
		if [ "$b" -gt "$a" ]; then
			OPS_DETAIL="rounds $a -> $b"
			return 0
		fi
		[ "$(now_ms)" -lt "$end" ] || break
		sleep 0.05
	done
	OPS_DETAIL="rounds still $a after $WAIT_S s"
	return 1
}

# True when an evict's output says it moved at least the tenant's buffer.
ops_moved_all() {
	awk -v mib="$OPS_MIB" '
		/evicted [0-9.]+ (B|KiB|MiB|GiB|TiB)/ {
			for (i = 1; i < NF; i++)
				if ($i == "evicted") { v = $(i + 1); u = $(i + 2) }
		}
		END {
			f = u == "GiB" ? 1024 : u == "TiB" ? 1048576 : u == "MiB" ? 1 : 0
			exit !(v * f >= mib)
		}' "$1"
}

# ops_step NAME VERB STATE frozen|moves: `cuvisor VERB ID`, after which
# `cuvisor ps` must say STATE and the tenant must make no progress
# (frozen) or make progress again (moves). Prints PASS or FAIL.
ops_step() {
	local name=$1 verb=$2 want=$3 motion=$4 out=$LOGS/ops-$1.out st rc
	ops_cli "$name" "$verb" "$OPS_ID"
	rc=$?
	if [ $rc != 0 ]; then
		result FAIL "ops:$name" "cuvisor $verb $OPS_ID: exit $rc: $(tail -n 1 "$out")" "$DLOG"
		return 1
	fi
	st=$(ops_state "$OPS_ID")
	if [ "$st" != "$want" ]; then
		result FAIL "ops:$name" "cuvisor ps says '$st', not $want" "$DLOG"
		return 1
	fi
	if [ "$verb" = evict ] && ! ops_moved_all "$out"; then
		result FAIL "ops:$name" "evicted less than the tenant's $OPS_MIB MiB: $(head -n 1 "$out")" "$DLOG"
		return 1
	fi
	if [ "$motion" = frozen ] && ! ops_frozen; then
		result FAIL "ops:$name" "progress while $want: $OPS_DETAIL" "$OPS_LOG"
		return 1
	fi
	if [ "$motion" = moves ] && ! ops_moves; then
		result FAIL "ops:$name" "no progress after resume: $OPS_DETAIL" "$OPS_LOG"
		return 1
	fi
	result PASS "ops:$name" "$(head -n 1 "$out"); $OPS_DETAIL"
}

ops_cycles() {
	local i
	for i in 1 2 3; do
		ops_step "suspend:$i" suspend suspended frozen || return 1
		ops_step "resume:$i" resume running moves || return 1
		ops_step "evict:$i" evict evicted frozen || return 1
		ops_step "resume-evicted:$i" resume running moves || return 1
	done
}

# Refusals the daemon answers by itself: clear messages, exit 1.
ops_refusals() {
	local rc out=$LOGS/ops-unknown.out
	ops_cli unknown suspend 999999
	rc=$?
	if [ $rc = 1 ] && grep -q "no tenant 999999" "$out"; then
		result PASS ops:unknown-tenant "$(head -n 1 "$out")"
	else
		result FAIL ops:unknown-tenant "exit $rc: $(head -n 1 "$out")"
	fi
	out=$LOGS/ops-resume-running.out
	ops_cli resume-running resume "$OPS_ID"
	rc=$?
	if [ $rc = 1 ] && grep -q "tenant $OPS_ID is running" "$out"; then
		result PASS ops:resume-running "$(head -n 1 "$out")"
	else
		result FAIL ops:resume-running "exit $rc: $(head -n 1 "$out")"
	fi
}

ops_tenant() {
	local cli gpid rc
	OPS_LOG=$LOGS/ops-tenant.log
	guest "$OPS_LOG" "$TB/cu_pagecount" -t 0 -m "$OPS_MIB"
	cli=$GUEST
	if ! wait_line "$OPS_LOG" '^# ready' "$WAIT_S"; then
		result FAIL ops:start "the tenant did not start counting" "$OPS_LOG"
		kill -KILL "$cli" 2>/dev/null
		return
	fi
	gpid=$(field "$OPS_LOG" guest_pid)
	OPS_ID=$(tenant_of "$gpid")
	if [ -z "$OPS_ID" ]; then
		result FAIL ops:start "cuvisor ps lists no tenant of pid $gpid" "$DLOG"
		kill -KILL "$gpid" 2>/dev/null
		return
	fi
	ops_refusals
	if ! ops_cycles; then
		# Let it go on, so that its own checks still say something.
		ops_cli unstick resume "$OPS_ID"
	fi
	kill -TERM "$gpid" 2>/dev/null
	wait "$cli" 2>/dev/null
	rc=$?
	if [ $rc = 0 ]; then
		result PASS ops:tenant-checks "$(ops_rounds) rounds, every page right"
	else
		result FAIL ops:tenant-checks "exit $rc" "$OPS_LOG"
	fi
}

# A worker killed with SIGKILL (while idle, then in the middle of an
# evict): its guest's calls fail with a CUDA error instead of hanging, the
# evict reports an error, and the daemon goes on.
ops_worker_killed() {
	local what=$1 cli gpid wpid rc t0 log=$LOGS/ops-killed-$1.log op= id n0
	guest "$log" "$TB/cu_pagecount" -t 0 -m "$OPS_MIB"
	cli=$GUEST
	if ! wait_line "$log" '^# ready' "$WAIT_S"; then
		result FAIL "ops:worker-killed-$what" "the tenant did not start" "$log"
		kill -KILL "$cli" 2>/dev/null
		return
	fi
	gpid=$(field "$log" guest_pid)
	wpid=$(field "$log" worker_pid)
	if [ "$what" = during-evict ]; then
		if ! id=$(tenant_of "$gpid"); then
			result FAIL "ops:worker-killed-$what" "cuvisor ps lists no tenant of pid $gpid" "$LOGS/ps-retries.out"
			kill -KILL "$gpid" 2>/dev/null
			return
		fi
		n0=$(lines_of "$DLOG")
		timeout 120 "$BIN/cuvisor" evict "$id" --socket "$SOCK" \
			> "$LOGS/ops-killed-evict.out" 2>&1 &
		op=$!
		# the daemon has handed the evict to the worker
		wait_line_after "$DLOG" "$n0" "tenant $id: evict asked by" "$WAIT_S"
	fi
	t0=$(now_ms)
	kill -KILL "$wpid" 2>/dev/null
	gpid_gone() { ! alive "$gpid"; }
	if ! wait_for "$WAIT_S" gpid_gone; then
		result FAIL "ops:worker-killed-$what" "the guest still runs $WAIT_S s after its worker died" "$log"
		kill -KILL "$gpid" 2>/dev/null
	fi
	wait "$cli" 2>/dev/null
	rc=$?
	if [ $rc != 0 ] && [ $rc != 124 ] && grep -q "CUDA_ERROR" "$log"; then
		result PASS "ops:worker-killed-$what" "guest failed with a CUDA error after $(( $(now_ms) - t0 )) ms"
	else
		result FAIL "ops:worker-killed-$what" "guest exit $rc" "$log"
	fi
	if [ -n "$op" ]; then
		wait "$op"
		rc=$?
		# the evict either finished before the kill or reports the loss
		if [ $rc = 0 ] || grep -qiE "went away|error|lost|exited" "$LOGS/ops-killed-evict.out"; then
			result PASS "ops:evict-of-killed-worker-returns" "exit $rc"
		else
			result FAIL "ops:evict-of-killed-worker-returns" "exit $rc" "$LOGS/ops-killed-evict.out"
		fi
	fi
}

run_ops() {
	if ! have_cuvisor; then
		result SKIP ops "cuvisor is not built"
		return
	fi
	if [ ! -x "$TB/cu_pagecount" ]; then
		result FAIL ops "test programs missing (make test-programs)"
		return
	fi
	if ! start_daemon; then
		result FAIL ops:daemon-start "cuvisord did not answer" "$DLOG"
		return
	fi
	GUEST_MEM=$((OPS_MIB * 2 + 64))M
	ops_tenant
	ops_worker_killed idle
	ops_worker_killed during-evict
	GUEST_MEM=
	if daemon_answers; then
		result PASS ops:daemon-answers
	else
		result FAIL ops:daemon-answers "cuvisor ps failed" "$LOGS/ps.out"
	fi
	stop_daemon
}

# ---- sanitizers --------------------------------------------------------

# san NAME SANITIZER EXTRA_CFLAGS [TEST]
san() {
	local name=$1 s=$2 cflags=$3 t=${4:-test_ring} dir=build-$2
	local log=$LOGS/san-$2-$t.log rc
	if ! $MAKE -j2 O="$dir" SAN="$s" CFLAGS="$cflags" "$dir/tests/$t" \
		> "$log.build" 2>&1; then
		result FAIL "$name" "build failed" "$log.build"
		return
	fi
	CUVISOR_HOST_KERNELS=$TB/libtestkernels.so \
		timeout "$UNIT_TIMEOUT" "$dir/tests/$t" > "$log" 2>&1
	rc=$?
	# TSan cannot run with some kernels' high mmap randomisation.
	if [ $rc != 0 ] && grep -q "unexpected memory mapping" "$log"; then
		timeout "$UNIT_TIMEOUT" setarch "$(uname -m)" -R \
			"$dir/tests/$t" > "$log" 2>&1
		rc=$?
	fi
	if [ $rc = 0 ] && ! grep -qE "ERROR: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:" "$log"; then
		result PASS "$name"
	else
		result FAIL "$name" "exit $rc" "$log"
	fi
}

run_san() {
	local cc=${CC:-cc} notsan=
	# gcc warns that TSan does not model atomic_thread_fence (ring.c uses
	# them for the futex handshakes, which TSan does not see either).
	if echo 'int x;' | $cc -Werror -Wno-tsan -fsyntax-only -x c - 2>/dev/null; then
		notsan=-Wno-tsan
	fi
	san san:asan:test_ring asan ""
	san san:asan:test_decode asan "" test_decode
	san san:asan:test_alloc asan "" test_alloc
	san san:asan:test_revoke asan "" test_revoke
	san san:asan:test_image asan "" test_image
	san san:asan:test_digest asan "" test_digest
	san san:asan:test_mig asan "" test_mig
	san san:asan:test_remote asan "" test_remote
	san san:tsan:test_ring tsan "$notsan"
	san san:tsan:test_image tsan "$notsan" test_image
	san san:tsan:test_mig tsan "$notsan" test_mig
}

# ---- fuzzers --------------------------------------------------------------

# Each libFuzzer harness runs for FUZZ_SMOKE_S seconds (default 20) from
# its seed corpus, fuzz_mig, fuzz_peer and fuzz_remote for FUZZ_MIG_S
# (default 5); a
# crash, leak or sanitizer report fails it.
run_fuzz() {
	local t log=$LOGS/fuzz-build.log f c
	if ! command -v clang > /dev/null; then
		result SKIP fuzz "clang not installed"
		return
	fi
	if ! $MAKE -j2 fuzz > "$log" 2>&1; then
		result FAIL fuzz:build "make fuzz failed" "$log"
		return
	fi
	for f in fuzz_decode fuzz_ctl fuzz_image fuzz_restore fuzz_mig fuzz_peer fuzz_remote; do
		c=$LOGS/corpus-$f
		mkdir -p "$c"
		t=${FUZZ_SMOKE_S:-20}
		[ $f = fuzz_decode ] && python3 fuzz/seeds.py "$c"
		[ $f = fuzz_restore ] && python3 fuzz/restore_seeds.py "$c"
		[ $f = fuzz_mig ] && python3 fuzz/seeds.py --mig "$c" &&
			t=${FUZZ_MIG_S:-5}
		[ $f = fuzz_peer ] || [ $f = fuzz_remote ] && t=${FUZZ_MIG_S:-5}
		# a copy lane's piece: 8 KiB of zeros as one zstd frame
		[ $f = fuzz_remote ] &&
			printf '\004\377\037\050\265\057\375\000\110\115\000\000\020\000\000\001\000\373\337\003\054' \
				> "$c/lane-zeros"
		# small images, written by the image library itself
		[ $f = fuzz_image ] && [ -x "$TB/test_image" ] &&
			"$TB/test_image" --seeds "$c"
		if timeout $((t + 60)) "$O/fuzz/$f" -max_total_time="$t" \
			-rss_limit_mb=4096 -malloc_limit_mb=2048 "$c" \
			> "$LOGS/$f.log" 2>&1; then
			result PASS "fuzz:$f" "$(grep -o 'Done [0-9]* runs' \
				"$LOGS/$f.log")"
		else
			result FAIL "fuzz:$f" "crash or report" "$LOGS/$f.log"
		fi
	done
}

# ---- CUDA runtime programs ------------------------------------------------

# Programs of build/tests/rt/ that fail today because the guest lacks a
# piece; their failure is reported as XFAIL, not counted as a failure.
# Set CV_RT_XFAIL (comma-separated names, may be empty) to override.
# Why each fails on the host backend (2026-11-24, commit 9b024e0, from
# the programs' output, CUVISOR_LOG and a gdb trace of the driver calls):
#  - blas_gemm, blaslt: cublasCreate/cublasLtCreate fail with
#    CUBLAS_STATUS_INTERNAL_ERROR: cuLibraryGetKernel of
#    _ZN6cublas8internal23nopClusterDiscoveryToolEv is NOT_FOUND (the host
#    backend has no twin of it). With a no-op twin, the next refusal is
#    cuOccupancyMaxActiveClusters (a NOT_SUPPORTED stub, also on a GPU),
#    then cuLibraryGetGlobal of _ZN6cublas8internal15deviceConstantsE is
#    NOT_FOUND (host backend: CUBLAS_STATUS_ALLOC_FAILED). Past those,
#    blas_gemm passes.
#  - blaslt, past the above: cublasLtMatmulAlgoGetHeuristic returns
#    CUBLAS_STATUS_NOT_SUPPORTED right after the runtime called slot [2]
#    of the tools-TLS export table, which the guest does not implement.
#  - fft: cufftEstimate1d, cufftCreate and cufftPlan1d fail with
#    CUFFT_INTERNAL_ERROR (5): cuFFT asks cuGetExportTable for table
#    21 31 8c 60 97 14 32 48 8c a6 41 ff 73 24 c8 f2, which the guest
#    refuses (logged as "unknown table").
RT_XFAIL_DEFAULT=blas_gemm,blaslt,fft
RT_TIMEOUT=120

# rt_xfail NAME: true when NAME is expected to fail.
rt_xfail() {
	case ",${CV_RT_XFAIL-$RT_XFAIL_DEFAULT}," in
	*",$1,"*) return 0 ;;
	*) return 1 ;;
	esac
}

# rt_result NAME RC LOG: PASS/SKIP/FAIL as e2e, XFAIL for listed names.
rt_result() {
	local name=$1 rc=$2 log=$3 why first
	case $rc in
	0) why= ;;
	77) result SKIP "rt:$name" "the program skipped itself"; return ;;
	124) why="timed out after ${RT_TIMEOUT}s" ;;
	*) why="exit $rc"
	   [ "$rc" -gt 128 ] && why="$why: $(kill -l $((rc - 128)) 2>/dev/null)" ;;
	esac
	if [ -z "$why" ]; then
		if rt_xfail "$name"; then
			result PASS "rt:$name" "listed in CV_RT_XFAIL: take it off"
		else
			result PASS "rt:$name"
		fi
	elif rt_xfail "$name"; then
		first=$(grep -m1 -E '^(not ok|Bail out)' "$log" | cut -c1-100)
		echo "XFAIL rt:$name ($why${first:+; $first})"
		NSKIP=$((NSKIP + 1))
	else
		result FAIL "rt:$name" "$why" "$log"
		grep -E ' (warn|error): ' "${log%.log}.guest.log" 2>/dev/null |
			tail -n 4 | sed 's/^/    | guest: /'
	fi
}

run_rt() {
	local p name rc log found=0
	if ! have_cuvisor; then
		result SKIP rt "cuvisor is not built ($BIN, $O/lib)"
		return
	fi
	for p in "$TB"/rt/*; do
		[ -f "$p" ] && [ -x "$p" ] || continue
		found=1
		name=$(basename "$p")
		log=$LOGS/rt-$name.log
		CUVISOR_LOG=info:$LOGS/rt-$name.guest.log \
			timeout "$RT_TIMEOUT" "$BIN/cuvisor" run \
			--backend "$BACKEND" --mem "$MEM" -- "$p" > "$log" 2>&1
		rc=$?
		rt_result "$name" "$rc" "$log"
	done
	[ $found = 1 ] || result SKIP rt "no programs in $TB/rt (needs nvcc: make rt-programs)"
}

# ------------------------------------------------------------------------

want unit && run_unit
want e2e && run_e2e
if want kill || want garbage; then run_multi; fi
want san && run_san
want fuzz && run_fuzz
want rt && run_rt
want ops && run_ops
# shellcheck source=tests/survive.sh
. "$ROOT/tests/survive.sh"
want crowd && run_crowd
# shellcheck source=tests/ckpt.sh
. "$ROOT/tests/ckpt.sh"
want ckpt && run_ckpt
# shellcheck source=tests/migrate.sh
. "$ROOT/tests/migrate.sh"
want mig && run_mig
want survive && run_survive
# shellcheck source=tests/remote.sh
. "$ROOT/tests/remote.sh"
want peer && run_peer
# shellcheck source=tests/limits.sh
. "$ROOT/tests/limits.sh"
want limits && run_limits
# shellcheck source=tests/netns.sh
. "$ROOT/tests/netns.sh"
want netns && run_netns
want rloop && run_rloop
# shellcheck source=tests/sec.sh
. "$ROOT/tests/sec.sh"
want sec && run_sec
# shellcheck source=tests/admit.sh
. "$ROOT/tests/admit.sh"
want admit && run_admit
# shellcheck source=tests/holder.sh
. "$ROOT/tests/holder.sh"
want holder && run_holder

if [ "$NFAIL" -gt 0 ] || [ "$KEEP" -eq 1 ]; then
	echo "logs: $LOGS"
fi
echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
[ "$NFAIL" -eq 0 ]
