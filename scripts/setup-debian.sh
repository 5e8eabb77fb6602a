#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what cuvisor needs to build and test on Debian 12, when it is
# missing: a C toolchain, clang with libFuzzer and the sanitizers, python3,
# the xxhash, OpenSSL (tests) and zstd (checkpoint images) headers.
# The CUDA 13 toolkit (headers, nvcc, lib64/stubs) is expected at
# $CUDA_HOME (default /usr/local/cuda); Debian does not package CUDA 13.
set -eu

pkgs="build-essential clang libclang-rt-14-dev python3 procps libxxhash-dev libssl-dev libzstd-dev"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "setup: installing$missing"
	if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi

cuda=${CUDA_HOME:-/usr/local/cuda}
if [ ! -f "$cuda/include/cuda.h" ] || [ ! -f "$cuda/include/cudaTypedefs.h" ] ||
   [ ! -f "$cuda/lib64/stubs/libcuda.so" ]; then
	echo "setup: no CUDA toolkit at $cuda (need include/cuda.h, include/cudaTypedefs.h," >&2
	echo "       lib64/stubs/libcuda.so from CUDA 13); set CUDA_HOME" >&2
	exit 1
fi
