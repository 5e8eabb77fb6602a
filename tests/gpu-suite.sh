#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The GPU suite: one command on a machine with an NVIDIA GPU.
#
#   tests/gpu-suite.sh [--no-build] [PROGRAM...]
#
# Builds (make all test-programs), then runs every build/tests/cu_*
# program twice: natively (the real driver; LD_LIBRARY_PATH untouched) and
# under `cuvisor run --backend cuda` (a private daemon), and compares the
# exit status and the check lines (ok/not ok + description, numbering and
# "#" notes ignored, order ignored since threads interleave). PASS needs
# both runs to exit 0 with the same checks. Then the CUDA runtime
# programs build/tests/rt/* the same way (their "# digest" lines compared
# too), then the multi-tenant kill and garbage tests and the ops, ckpt
# and mig sections (suspend, evict, checkpoint, restore, daemon restart,
# live migration; a
# tenant of GPU_OPS_MIB, default 4096 MiB) of tests/run.sh on the cuda
# backend.
#
# Prints PASS/FAIL/SKIP per program and last "N passed, N failed, N
# skipped"; exits 1 on any failure. Without a GPU (nvidia-smi -L fails or
# there is no /dev/nvidia0) it says so and exits 0.
set -u
cd "$(dirname "$0")/.." || exit 2

O=${O:-build}
TB=$PWD/$O/tests
CUVISOR=$PWD/$O/bin/cuvisor
TIMEOUT=300
BUILD=1
if [ "${1:-}" = --no-build ]; then
	BUILD=0
	shift
fi

if ! nvidia-smi -L > /dev/null 2>&1 || [ ! -e /dev/nvidia0 ]; then
	echo "SKIP gpu-suite: no NVIDIA GPU (nvidia-smi -L failed or no /dev/nvidia0)"
	exit 0
fi
nvidia-smi -L | sed 's/^/# /'

if [ $BUILD = 1 ]; then
	if ! make -j"$(nproc)" all test-programs > /tmp/gpu-suite-build.$$ 2>&1; then
		tail -n 30 /tmp/gpu-suite-build.$$
		echo "FAIL build (see above)"
		echo "0 passed, 1 failed, 0 skipped"
		rm -f /tmp/gpu-suite-build.$$
		exit 1
	fi
	rm -f /tmp/gpu-suite-build.$$
fi

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/cuvisor-gpu-suite.XXXXXX") || exit 2
NPASS=0 NFAIL=0 NSKIP=0
unset CUVISOR_HOST_KERNELS CVT_EXPECT_MEM
export CUVISOR_SOCKET=$LOGS/none.sock # never an outside daemon

checks() {
	grep -E '^(not ok|ok) [0-9]+ - ' "$1" |
		sed -E 's/^(not ok|ok) [0-9]+ - /\1 - /' | sort
}

progs=("$@")
if [ ${#progs[@]} -eq 0 ]; then
	for p in "$TB"/cu_*; do
		[ -x "$p" ] && progs+=("$(basename "$p")")
	done
fi

for name in "${progs[@]}"; do
	p=$TB/$name
	args=()
	case $name in
	cu_garbage) echo "SKIP $name (cuvisor only: run by the garbage tests below)"
		    NSKIP=$((NSKIP + 1)); continue ;;
	cu_streamer) args=(-t 3) ;;
	esac
	timeout $TIMEOUT "$p" "${args[@]}" > "$LOGS/$name.native" 2>&1
	rn=$?
	timeout $TIMEOUT "$CUVISOR" run --backend cuda -- "$p" "${args[@]}" \
		> "$LOGS/$name.cuvisor" 2>&1
	rc=$?
	checks "$LOGS/$name.native" > "$LOGS/$name.native.checks"
	checks "$LOGS/$name.cuvisor" > "$LOGS/$name.cuvisor.checks"
	if [ $rn = 0 ] && [ $rc = 0 ] &&
	   cmp -s "$LOGS/$name.native.checks" "$LOGS/$name.cuvisor.checks"; then
		echo "PASS $name"
		NPASS=$((NPASS + 1))
		continue
	fi
	NFAIL=$((NFAIL + 1))
	if [ $rn != 0 ]; then
		echo "FAIL $name (native exit $rn: the test or this machine is wrong; cuvisor exit $rc)"
		grep -E '^(not ok|Bail)' -A1 "$LOGS/$name.native" | head -12 | sed 's/^/    native | /'
	else
		echo "FAIL $name (cuvisor exit $rc)"
	fi
	diff "$LOGS/$name.native.checks" "$LOGS/$name.cuvisor.checks" |
		grep -E '^[<>]' | head -12 | sed 's/^</    native  |/; s/^>/    cuvisor |/'
	grep -E '^not ok' -A1 "$LOGS/$name.cuvisor" | head -12 | sed 's/^/    cuvisor | /'
done

# CUDA runtime programs (build/tests/rt/, tests/rt/): natively and under
# `cuvisor run --backend cuda`; PASS needs both to exit 0 with the same
# check lines and the same "# digest" lines (results hashed by the
# programs). Not run when PROGRAMs were named.
rt_lines() {
	{
		checks "$1"
		grep -E '^# digest ' "$1" | sort
	}
}

if [ $# -eq 0 ]; then
	if [ $BUILD = 1 ] && ! make -j"$(nproc)" rt-programs > "$LOGS/rt-build.log" 2>&1; then
		tail -n 30 "$LOGS/rt-build.log"
		echo "FAIL rt-programs build (see above)"
		NFAIL=$((NFAIL + 1))
	fi
	for p in "$TB"/rt/*; do
		[ -f "$p" ] && [ -x "$p" ] || continue
		name=rt:$(basename "$p")
		log=$LOGS/rt-$(basename "$p")
		timeout $TIMEOUT "$p" > "$log.native" 2>&1
		rn=$?
		CUVISOR_LOG=warn:$log.guest timeout $TIMEOUT "$CUVISOR" run \
			--backend cuda -- "$p" > "$log.cuvisor" 2>&1
		rc=$?
		rt_lines "$log.native" > "$log.native.checks"
		rt_lines "$log.cuvisor" > "$log.cuvisor.checks"
		if [ $rn = 0 ] && [ $rc = 0 ] &&
		   cmp -s "$log.native.checks" "$log.cuvisor.checks"; then
			echo "PASS $name"
			NPASS=$((NPASS + 1))
			continue
		fi
		if [ $rn = 77 ] && [ $rc = 77 ]; then
			echo "SKIP $name (skipped itself natively and under cuvisor)"
			NSKIP=$((NSKIP + 1))
			continue
		fi
		NFAIL=$((NFAIL + 1))
		if [ $rn != 0 ]; then
			echo "FAIL $name (native exit $rn: the test or this machine is wrong; cuvisor exit $rc)"
			grep -E '^(not ok|Bail)' -A1 "$log.native" | head -12 | sed 's/^/    native | /'
		else
			echo "FAIL $name (cuvisor exit $rc)"
		fi
		diff "$log.native.checks" "$log.cuvisor.checks" |
			grep -E '^[<>]' | head -12 | sed 's/^</    native  |/; s/^>/    cuvisor |/'
		grep -E '^(not ok|Bail)' -A1 "$log.cuvisor" | head -12 | sed 's/^/    cuvisor | /'
		tail -n 4 "$log.guest" 2>/dev/null | sed 's/^/    guest   | /'
	done
fi

# Kill and garbage tests, then suspend/resume/evict, 40 tenants at once
# (crowd), checkpoint/restore, live migration and the kill matrix (ops,
# ckpt, mig, survive) of a tenant updating every page of
# GPU_OPS_MIB (default 4096) MiB, on the cuda backend; then the peer link
# and remote vGPUs between two daemons on the one GPU over loopback (peer,
# rloop: remote runs, migration to the other daemon's GPU and back).
OPS_MIB=${GPU_OPS_MIB:-4096} bash tests/run.sh --backend cuda \
	--only kill,garbage,ops,crowd,ckpt,mig,survive,peer,rloop \
	> "$LOGS/multi.log" 2>&1
grep -E '^(PASS|FAIL|SKIP|    )' "$LOGS/multi.log"
read -r mp mf ms < <(awk '/ passed, .* failed, .* skipped$/ { print $1, $3, $5 }' "$LOGS/multi.log")
NPASS=$((NPASS + ${mp:-0}))
NFAIL=$((NFAIL + ${mf:-1}))
NSKIP=$((NSKIP + ${ms:-0}))

if [ $NFAIL -gt 0 ]; then
	echo "logs: $LOGS"
else
	rm -rf "$LOGS"
fi
echo "$NPASS passed, $NFAIL failed, $NSKIP skipped"
[ $NFAIL -eq 0 ]
