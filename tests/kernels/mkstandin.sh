#!/bin/sh
# SPDX-License-Identifier: MIT
#
# mkstandin.sh KIND OUT: writes a stand-in for build/tests/kernels.KIND
# (KIND = fatbin, cubin or ptx) when nvcc is absent (CI without the CUDA
# toolkit). The stand-ins contain no GPU code; they only have the format
# the host backend checks before it resolves kernel names in the host
# kernel library (tests/kernels/host_kernels.c):
#   ptx     PTX text (.version/.target/.address_size) declaring every
#           kernel of kernels.cu as an empty .entry;
#   cubin   a 64-byte ELF64 header for EM_CUDA (190), no sections;
#   fatbin  a fat binary header (magic 0xBA55ED50, version 1) holding the
#           stand-in PTX as one uncompressed PTX entry, laid out as nvcc
#           13.0 lays one out.
# On a GPU these files fail to load: build the real ones with nvcc.
set -eu

kind=$1
out=$2
kernels="empty vec_add scale fill_pattern page_inc words_inc spin global_add global_read params_probe fma_loop write_at"

# Little-endian integers as raw bytes (octal escapes: POSIX printf).
# (sh has no locals: the le_ prefix keeps callers' variables intact.)
le() { # le BYTES VALUE
	le_n=$1 le_v=$2 le_s=""
	while [ "$le_n" -gt 0 ]; do
		le_s="$le_s$(printf '\\%03o' $((le_v & 255)))"
		le_v=$((le_v >> 8))
		le_n=$((le_n - 1))
	done
	printf "$le_s"
}

ptx() {
	printf '//\n// cuvisor stand-in PTX: no nvcc at build time.\n//\n\n'
	printf '.version 9.0\n.target sm_90\n.address_size 64\n\n'
	printf '.global .align 4 .u32 g_value = 42;\n'
	printf '.global .align 4 .b8 g_table[256];\n\n'
	for k in $kernels; do
		printf '.visible .entry %s()\n{\n\tret;\n}\n\n' "$k"
	done
}

cubin() {
	printf '\177ELF'
	le 1 2; le 1 1; le 1 1; le 1 65; le 1 8   # ELF64, LE, v1, CUDA ABI
	le 7 0                                     # e_ident padding
	le 2 2; le 2 190; le 4 1                   # ET_EXEC, EM_CUDA, v1
	le 8 0; le 8 0; le 8 0                     # entry, phoff, shoff
	le 4 $((0x06005a04))                       # e_flags as nvcc (sm_90)
	le 2 64; le 2 56; le 2 0; le 2 64; le 2 0; le 2 0
}

fatbin() {
	tmp="$out.ptx.tmp"
	ptx > "$tmp"
	printf '\0' >> "$tmp"                      # PTX is NUL-terminated
	n=$(wc -c < "$tmp")
	pad=$(( (n + 7) / 8 * 8 ))
	le 4 $((0xBA55ED50)); le 2 1; le 2 16; le 8 $((80 + pad))
	# entry: kind 1 (PTX), version 0x0101, header 80 bytes, payload size
	le 2 1; le 2 $((0x0101)); le 4 80; le 8 "$pad"
	le 4 0; le 4 64; le 2 0; le 2 9; le 4 90   # PTX ISA 9.0, sm_90
	le 8 0; le 8 $((0x11)); le 8 0; le 8 0     # flags: 64-bit, host Linux
	le 8 "$n"; le 8 0
	cat "$tmp"
	head -c $((pad - n)) /dev/zero
	rm -f "$tmp"
}

case "$kind" in
ptx|cubin|fatbin) "$kind" > "$out.tmp" && mv "$out.tmp" "$out" ;;
*) echo "usage: $0 fatbin|cubin|ptx OUT" >&2; exit 2 ;;
esac
