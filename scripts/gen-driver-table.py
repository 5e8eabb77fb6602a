#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Generate the guest library's driver tables from the CUDA toolkit.

Inputs (all from the toolkit, nothing hand-kept):
  lib64/stubs/libcuda.so   the exported symbol names (ELF .dynsym)
  include/cuda.h           the prototype of every exported symbol
  include/cudaTypedefs.h   PFN_<name>_v<version>[_ptsz|_ptds]: every
                           (name, version, flavour) cuGetProcAddress knows

Outputs (into --out, normally build/gen/):
  libcuda.map        linker version script: exactly the stub's symbols
  stubs.c            a weak definition of every exported symbol that
                     answers CUDA_ERROR_NOT_SUPPORTED (strong definitions
                     elsewhere in guest/ override them at link time)
  procaddr_table.c   cv_procaddr_table[]: (name, version, per-thread) ->
                     exported symbol, sorted for binary search
  procaddr_check.c   a compile-only proof of the mapping: one
                     _Static_assert per row that the PFN type and the
                     symbol's prototype are the same C type

How a PFN is mapped to a symbol. The headers are run through the C
preprocessor with __CUDA_API_VERSION_INTERNAL defined, the configuration in
which cuda.h declares every ABI it has ever had under its exported name (the
current ABIs through its "#define cuX cuX_vN" and __CUDA_API_PTDS/PTSZ
macros, the older ones under their plain names at its end). For a PFN
<name>_v<ver>[_<flavour>] the candidates are the exported symbols
<name>[_v<k>][_<flavour>]. All PFN versions of one (name, flavour) are
assigned to candidates in order (an older PFN version never maps to a newer
ABI suffix than a younger one, and distinct versions are distinct ABIs) so
that every parameter list matches after normalisation (typedef chains
resolved, so CUdeviceptr_v2 == CUdeviceptr and CUDA_MEMCPY2D_v2 ==
CUDA_MEMCPY2D, integer types by width, parameter names dropped). Exactly
one such assignment must exist: none leaves the PFNs unmapped (listed),
more than one is ambiguous and fails the generation. The result is then
checked twice: against cuda.h's "#define cuX cuX_vN" lines (the newest row
of cuX must be its current ABI; this settles pairs with one prototype, such
as cuStreamWriteValue32 and cuStreamWriteValue32_v2), and by the compiler
(procaddr_check.c, built with -fsyntax-only here: each PFN type must be the
C type of its symbol). Either failing fails the generation.
"""

import argparse
import itertools
import os
import re
import struct
import subprocess
import sys
import tempfile

# ---------------------------------------------------------------- ELF ----


def elf_dynamic_symbols(path):
	"""Defined global/weak symbols of an ELF64 little-endian shared object
	(what `nm -D --defined-only` lists)."""
	with open(path, "rb") as f:
		data = f.read()
	if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
		raise SystemExit(f"{path}: not an ELF64 little-endian object")
	(shoff,) = struct.unpack_from("<Q", data, 0x28)
	shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
	sections = []
	for i in range(shnum):
		sh = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
		sections.append(sh)
	names = set()
	for sh in sections:
		if sh[1] != 11:  # SHT_DYNSYM
			continue
		off, size, link, entsize = sh[4], sh[5], sh[6], sh[9]
		stroff = sections[link][4]
		for j in range(size // entsize):
			st_name, st_info, _other, st_shndx, _v, _s = \
				struct.unpack_from("<IBBHQQ", data, off + j * entsize)
			bind, typ = st_info >> 4, st_info & 0xF
			if st_shndx == 0 or bind not in (1, 2) or typ in (3, 4):
				continue  # undefined, local, section or file
			end = data.index(b"\0", stroff + st_name)
			names.add(data[stroff + st_name:end].decode())
	if not names:
		raise SystemExit(f"{path}: no dynamic symbols")
	return names


# ------------------------------------------------------------ C parse ----

TOKEN = re.compile(r"""
	[A-Za-z_]\w* | \d[\w.]* | \.\.\. | ->
	| "(?:\\.|[^"\\])*" | '(?:\\.|[^'\\])*'
	| [{}()\[\];,*=&<>+\-/|~!^%?:.]
""", re.X)

INT_WORDS = {"unsigned", "signed", "long", "short", "int", "char"}
DROP_WORDS = {"volatile", "restrict", "__restrict", "__restrict__",
	      "__extension__", "__inline", "inline", "extern", "CUDAAPI"}


def preprocess(cc, cuda_home):
	src = "#include <cudaTypedefs.h>\n"
	cmd = cc.split() + ["-E", "-P", "-D__CUDA_API_VERSION_INTERNAL",
			    "-I" + os.path.join(cuda_home, "include"), "-x", "c", "-"]
	res = subprocess.run(cmd, input=src, capture_output=True, text=True)
	if res.returncode:
		raise SystemExit("preprocessing cudaTypedefs.h failed:\n" + res.stderr)
	return res.stdout


def strip_attributes(toks):
	"""Remove __attribute__((...)) and __asm__(...) groups."""
	out, i = [], 0
	while i < len(toks):
		if toks[i] in ("__attribute__", "__asm__", "__asm") and \
		   i + 1 < len(toks) and toks[i + 1] == "(":
			depth, i = 0, i + 1
			while True:
				depth += {"(": 1, ")": -1}.get(toks[i], 0)
				i += 1
				if depth == 0:
					break
			continue
		if toks[i] not in DROP_WORDS:
			out.append(toks[i])
		i += 1
	return out


def statements(text):
	"""Top-level declarations as token lists (function bodies included
	whole, ending at their closing brace)."""
	toks = TOKEN.findall(text)
	stmt, depth, body_of_fn = [], 0, False
	for t in toks:
		if t == "{":
			if depth == 0:
				body_of_fn = bool(stmt) and stmt[-1] == ")"
			depth += 1
		elif t == "}":
			depth -= 1
		stmt.append(t)
		if depth == 0 and (t == ";" or (t == "}" and body_of_fn)):
			yield strip_attributes(stmt)
			stmt, body_of_fn = [], False


def split_top(toks, sep=","):
	"""Split at `sep` outside parentheses, brackets and braces."""
	parts, cur, depth = [], [], 0
	for t in toks:
		if t in "([{":
			depth += 1
		elif t in ")]}":
			depth -= 1
		if t == sep and depth == 0:
			parts.append(cur)
			cur = []
		else:
			cur.append(t)
	parts.append(cur)
	return parts


def match_close(toks, i):
	"""Index of the bracket closing the one at toks[i]."""
	pair = {"(": ")", "{": "}", "[": "]"}[toks[i]]
	depth = 0
	for j in range(i, len(toks)):
		if toks[j] == toks[i]:
			depth += 1
		elif toks[j] == pair:
			depth -= 1
			if depth == 0:
				return j
	raise ValueError("unbalanced " + toks[i])


class Types:
	"""Typedef table of the preprocessed headers and the normaliser."""

	def __init__(self):
		self.td = {}  # name -> canonical token list

	def add_typedef(self, toks):
		body = toks[1:-1]  # drop 'typedef' and ';'
		if "{" in body:
			lb = body.index("{")
			rb = match_close(body, lb)
			base = body[:lb]
			decls = split_top(body[rb + 1:])
			if len(base) == 1:  # anonymous struct/union/enum
				base = [base[0], "@" + decls[0][-1]]
			for d in decls:
				self._declare(base, d)
			return
		if "(" in body:  # function or function-pointer typedef
			i = body.index("(")
			name = [t for t in body[i:] if re.match(r"[A-Za-z_]", t)][0]
			self.td[name] = ["fn:" + name]
			return
		decls = split_top(body)
		first = decls[0]
		k = first.index("[") - 1 if "[" in first else len(first) - 1
		while k > 0 and first[k - 1] == "*":
			k -= 1
		base = first[:k]
		for d in [first[k:]] + decls[1:]:
			self._declare(base, d)

	def _declare(self, base, decl):
		if "[" in decl:  # array typedef: keep as its own type
			name = decl[decl.index("[") - 1]
			self.td[name] = ["arr:" + name]
			return
		name = decl[-1]
		stars = [t for t in decl[:-1] if t == "*"]
		self.td[name] = self.canon(base) + stars

	def canon(self, toks):
		"""Canonical tokens of a type (no declarator name)."""
		out, ints = [], []

		def flush():
			if ints:
				out.append(int_class(ints))
				ints.clear()
		for t in toks:
			if t in INT_WORDS:
				ints.append(t)
				continue
			flush()
			if t in self.td:
				out.extend(self.td[t])
			else:
				out.append(t)
		flush()
		return out

	def param(self, toks):
		"""Canonical string of one parameter declaration."""
		if "(" in toks:  # inline function-pointer parameter
			return "fnparam:" + " ".join(toks)
		array = "[" in toks  # T name[N] is T *name
		if array:
			toks = toks[:toks.index("[")]
		last = toks[-1] if toks else ""
		if len(toks) > 1 and re.match(r"[A-Za-z_]\w*$", last) and \
		   last not in self.td and last not in INT_WORDS and \
		   last not in ("void", "float", "double", "const") and \
		   toks[-2] not in ("struct", "union", "enum"):
			toks = toks[:-1]
		return " ".join(self.canon(toks) + (["*"] if array else []))

	def params(self, toks):
		"""Canonical tuple of a parenthesised parameter list's inside."""
		if toks == ["void"] or not toks:
			return ()
		return tuple(self.param(p) for p in split_top(toks))


def int_class(words):
	"""Integer keywords by signedness and width (LP64)."""
	w = sorted(words)
	uns = "unsigned" in w
	if "char" in w:
		return "u8" if uns else ("s8" if "signed" in w else "char")
	if "short" in w:
		bits = 16
	elif "long" in w:
		bits = 64
	else:
		bits = 32
	return ("u" if uns else "s") + str(bits)


PFN_RE = re.compile(r"^PFN_(\w+)_v(\d+)(?:_(ptsz|ptds))?$")


def parse_headers(text):
	"""Returns (prototypes {symbol: params}, pfns [(name, ver, flav,
	params)]) of the preprocessed headers."""
	types = Types()
	protos, pfns = {}, []
	for st in statements(text):
		if not st:
			continue
		if st[0] == "typedef":
			m = None
			if len(st) > 5 and st[1] == "CUresult" and st[2] == "(" and \
			   st[3] == "*":
				m = PFN_RE.match(st[4])
			if m:
				lp = st.index("(", 5)
				rp = match_close(st, lp)
				pfns.append((m.group(1), int(m.group(2)),
					     m.group(3) or "", types.params(st[lp + 1:rp])))
			types.add_typedef(st)
			continue
		if st[0] == "static" or "{" in st:
			continue
		if len(st) > 3 and st[0] == "CUresult" and st[2] == "(" and \
		   re.match(r"cu\w+$", st[1]):
			rp = match_close(st, 2)
			p = types.params(st[3:rp])
			if st[1] in protos and protos[st[1]] != p:
				raise SystemExit(f"{st[1]}: two different prototypes")
			protos[st[1]] = p
	return protos, pfns


# ------------------------------------------------------------ mapping ----

def candidates(name, flav, exported):
	"""Exported symbols that may implement PFN_<name>_v*[_flav], ordered
	by ABI suffix (plain first, then _v2, _v3, ...)."""
	sfx = "_" + flav if flav else ""
	found = []
	for s in exported:
		if not s.startswith(name) or not s.endswith(sfx):
			continue
		mid = s[len(name):len(s) - len(sfx)]
		if mid == "":
			found.append((1, s))
		elif re.match(r"_v(\d+)$", mid):
			found.append((int(mid[2:]), s))
	return [s for _, s in sorted(found)]


def map_group(name, flav, rows, exported, protos):
	"""rows: [(ver, params)] sorted by version. Returns ([symbol or None],
	error string or None)."""
	cands = [c for c in candidates(name, flav, exported) if c in protos]
	sols = []
	for combo in itertools.combinations(cands, len(rows)):
		if all(protos[c] == p for c, (_, p) in zip(combo, rows)):
			sols.append(combo)
	if len(sols) == 1:
		return list(sols[0]), None
	if len(sols) > 1:
		return None, "ambiguous: " + " | ".join(",".join(s) for s in sols)
	# No full assignment: map row by row where the prototype is unique.
	out = []
	for _, p in rows:
		hit = [c for c in cands if protos[c] == p]
		out.append(hit[0] if len(hit) == 1 else None)
	return out, None


def build_table(pfns, protos, exported):
	groups = {}
	for name, ver, flav, p in pfns:
		groups.setdefault((name, flav), []).append((ver, p))
	table, unmapped, ambiguous = [], [], []
	for (name, flav), rows in sorted(groups.items()):
		rows.sort()
		if len({v for v, _ in rows}) != len(rows):
			raise SystemExit(f"{name}: duplicate PFN version")
		syms, err = map_group(name, flav, rows, exported, protos)
		if err:
			ambiguous.append(f"{name}{'_' + flav if flav else ''}: {err}")
			continue
		for (ver, _), sym in zip(rows, syms):
			label = f"{name}@{ver}{' ' + flav if flav else ''}"
			if sym is None:
				unmapped.append(label)
			else:
				table.append((name, ver, 1 if flav else 0, sym))
	return table, unmapped, ambiguous


DEFINE_RE = re.compile(r"^\s*#\s*define\s+(cu\w+)\s+(?:__CUDA_API_PT(DS|SZ)"
		       r"\(\s*(cu\w+)\s*\)|(cu\w+))\s*$", re.M)


def check_defines(cuda_h, table):
	"""cuda.h's "#define cuX cuX_vN" (or __CUDA_API_PTSZ(cuX_vN)) names the
	current ABI of cuX: the newest legacy row of cuX must be cuX_vN and,
	for the PTDS/PTSZ forms, the newest per-thread row cuX_vN_ptds/_ptsz.
	"#define cuX __CUDA_API_PTSZ(cuX)" only says that cuX_ptsz is the
	per-thread twin of cuX: some rows must map to both.
	Returns a list of contradictions; defines to another name (an API
	renamed, e.g. cuGraphInstantiate) are returned separately."""
	with open(cuda_h) as f:
		text = f.read()
	newest, mapped = {}, {(r[0], r[2], r[3]) for r in table}
	for name, ver, pt, sym in table:
		if ver >= newest.get((name, pt), (0, ""))[0]:
			newest[(name, pt)] = (ver, sym)
	bad, renamed = [], []
	for m in DEFINE_RE.finditer(text):
		name, pt, target = m.group(1), m.group(2), m.group(3) or m.group(4)
		if (name, 0) not in newest:
			continue
		if target != name and not re.match(re.escape(name) + r"_v\d+$", target):
			renamed.append(f"{name} -> {target}")
			continue
		want = [(0, target)]
		if pt:
			want.append((1, target + "_pt" + pt.lower()))
		for flav, sym in want:
			if target == name:  # only says cuX has a per-thread twin
				if (name, flav, sym) not in mapped:
					bad.append(f"{name}: no row maps to {sym}")
				continue
			got = newest.get((name, flav), (0, None))[1]
			if got != sym:
				bad.append(f"{name}{' per-thread' if flav else ''}: "
					   f"cuda.h says {sym}, table has {got}")
	return bad, renamed


# ------------------------------------------------------------ outputs ----

HEADER = "/* Generated by scripts/gen-driver-table.py from {src}. Do not edit. */\n"


def write(path, text):
	"""Replace path with text, leaving it untouched when equal (so make
	rebuilds nothing after a regeneration that changed nothing)."""
	try:
		with open(path) as f:
			if f.read() == text:
				return
	except FileNotFoundError:
		pass
	tmp = path + ".tmp"
	with open(tmp, "w") as f:
		f.write(text)
	os.replace(tmp, path)


def emit_map(exported):
	lines = ["/* Generated by scripts/gen-driver-table.py from "
		 "lib64/stubs/libcuda.so. Do not edit. */",
		 "{", "global:"]
	lines += [f"\t{s};" for s in sorted(exported)]
	lines += ["local:", "\t*;", "};", ""]
	return "\n".join(lines)


def emit_stubs(exported):
	out = [HEADER.format(src="lib64/stubs/libcuda.so"),
	       "/*",
	       " * A weak definition of every symbol the driver exports: a call",
	       " * that no file of guest/ implements answers CUDA_ERROR_NOT_SUPPORTED",
	       " * (logged once per name). No cuda.h here: these are not the",
	       " * real prototypes, and a strong definition elsewhere wins.",
	       " */",
	       '#include "procaddr.h"', ""]
	for s in sorted(exported):
		out.append(f"__attribute__((weak)) int {s}(void) "
			   f"{{ return cv_guest_unsupported(\"{s}\"); }}")
	out.append("")
	return "\n".join(out)


def emit_table(table):
	syms = sorted({r[3] for r in table})
	out = [HEADER.format(src="cudaTypedefs.h, cuda.h and lib64/stubs/libcuda.so"),
	       '#include "procaddr.h"', "",
	       "/* Addresses only: the real prototypes are in cuda.h. */"]
	out += [f"extern void {s}(void);" for s in syms]
	out += ["",
		"/* Sorted by (name, per_thread, version) for cv_procaddr_lookup. */",
		"const struct cv_procaddr_entry cv_procaddr_table[] = {"]
	for name, ver, pt, sym in table:
		out.append(f'\t{{ "{name}", {sym}, "{sym}", {ver}, {pt} }},')
	out += ["};", "",
		"const unsigned int cv_procaddr_count =",
		"\tsizeof(cv_procaddr_table) / sizeof(cv_procaddr_table[0]);", ""]
	return "\n".join(out)


def emit_check(table):
	out = [HEADER.format(src="cudaTypedefs.h"),
	       "/* Compile-only: every table row's PFN type is its symbol's type. */",
	       "#define __CUDA_API_VERSION_INTERNAL 1",
	       "#include <cudaTypedefs.h>", ""]
	for name, ver, pt, sym in table:
		flav = ("_ptsz" if sym.endswith("_ptsz") else "_ptds") if pt else ""
		out += [f"#undef {sym}",
			f"_Static_assert(__builtin_types_compatible_p("
			f"PFN_{name}_v{ver}{flav}, __typeof__(&{sym})), "
			f"\"PFN_{name}_v{ver}{flav} != {sym}\");"]
	out.append("")
	return "\n".join(out)


def c_sort_key(row):
	name, ver, pt, _ = row
	return (name.encode(), pt, ver)  # strcmp order


def main():
	ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
	ap.add_argument("--cuda-home", default=os.environ.get("CUDA_HOME",
							       "/usr/local/cuda"))
	ap.add_argument("--cc", default=os.environ.get("CC", "cc"))
	ap.add_argument("--out", required=True)
	ap.add_argument("-v", "--verbose", action="store_true",
			help="print the whole mapping")
	args = ap.parse_args()

	stub = os.path.join(args.cuda_home, "lib64", "stubs", "libcuda.so")
	exported = elf_dynamic_symbols(stub)
	protos, pfns = parse_headers(preprocess(args.cc, args.cuda_home))
	table, unmapped, ambiguous = build_table(pfns, protos, exported)
	table.sort(key=c_sort_key)

	bad, renamed = check_defines(os.path.join(args.cuda_home, "include",
						  "cuda.h"), table)
	if bad:
		print("gen-driver-table: mapping contradicts cuda.h:\n  " +
		      "\n  ".join(bad), file=sys.stderr)
		return 1
	if args.verbose and renamed:
		print("cuda.h renames (not in cudaTypedefs.h, not mapped): " +
		      ", ".join(renamed))
	undeclared = sorted(exported - set(protos))
	if undeclared:
		print("gen-driver-table: exported but not declared in cuda.h "
		      "(weak stub only): " + " ".join(undeclared), file=sys.stderr)
	if unmapped:
		print(f"gen-driver-table: {len(unmapped)} PFN(s) not mapped to an "
		      "exported symbol: " + ", ".join(unmapped), file=sys.stderr)
	if ambiguous:
		print("gen-driver-table: ambiguous mapping:\n  " +
		      "\n  ".join(ambiguous), file=sys.stderr)
		return 1
	if args.verbose:
		for name, ver, pt, sym in table:
			print(f"{name}@{ver}{' per-thread' if pt else ''} -> {sym}")

	os.makedirs(args.out, exist_ok=True)
	check = os.path.join(args.out, "procaddr_check.c")
	write(check, emit_check(table))
	res = subprocess.run(args.cc.split() + [
		"-std=gnu11", "-fsyntax-only",
		"-I" + os.path.join(args.cuda_home, "include"), check],
		capture_output=True, text=True)
	if res.returncode:
		print("gen-driver-table: the compiler rejects the mapping:\n" +
		      res.stderr, file=sys.stderr)
		return 1
	write(os.path.join(args.out, "libcuda.map"), emit_map(exported))
	write(os.path.join(args.out, "stubs.c"), emit_stubs(exported))
	write(os.path.join(args.out, "procaddr_table.c"), emit_table(table))
	print(f"gen-driver-table: {len(exported)} symbols, {len(pfns)} PFNs, "
	      f"{len(table)} mapped, {len(unmapped)} unmapped")
	return 0


if __name__ == "__main__":
	sys.exit(main())
