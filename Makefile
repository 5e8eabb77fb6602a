# cuvisor build. `make` builds everything into build/; `make test` runs the
# CI suite (no GPU needed); see README.md for the rest.

CUDA_HOME ?= /usr/local/cuda
CC ?= cc
O ?= build
SAN ?=
WERROR ?=

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-Wstrict-prototypes -fno-strict-aliasing -pthread -fPIC \
	-I$(CUDA_HOME)/include -D_GNU_SOURCE
ifneq ($(WERROR),)
CFLAGS_BASE += -Werror
endif
ifeq ($(SAN),asan)
CFLAGS_BASE += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
endif
ifeq ($(SAN),tsan)
CFLAGS_BASE += -fsanitize=thread -fno-omit-frame-pointer
LDSAN := -fsanitize=thread
endif
CFLAGS_ALL := $(CFLAGS_BASE) $(CFLAGS)
LDFLAGS_ALL := -pthread $(LDSAN) $(LDFLAGS)

# libzstd, for checkpoint images (core/image.c). A program links it when it
# calls the image writer or reader; cv_img_peek (core/image_hdr.c) needs
# none, and the guest library must never pull core/image.o in.
ZSTD_LIBS := -lzstd
# libcrypto (OpenSSL), for the peer link's HMAC and nonces (core/peer.c):
# the daemon and the CLI.
CRYPTO_LIBS := -lcrypto

CORE_SRC := $(wildcard core/*.c)
GUEST_SRC := $(wildcard guest/*.c) $(O)/gen/stubs.c $(O)/gen/procaddr_table.c \
	$(O)/gen/errors.c
WORKER_SRC := $(wildcard worker/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
CLI_SRC := $(wildcard cli/*.c)

obj = $(patsubst %.c,$(O)/obj/%.o,$(1))

LIB := $(O)/lib/libcuda.so.1
BINS := $(O)/bin/cuvisor $(O)/bin/cuvisord $(O)/bin/cuvisor-vgpu

.PHONY: all clean test gpu-suite bench fuzz
all: $(LIB) $(BINS)

$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(O)/core.a: $(call obj,$(CORE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The guest library: exports exactly the driver's symbols (generated
# version script), never the project's own.
$(LIB): $(call obj,$(GUEST_SRC)) $(O)/core.a $(O)/gen/libcuda.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libcuda.so.1 -Wl,--version-script=$(O)/gen/libcuda.map \
		-Wl,-z,defs -o $@ $(call obj,$(GUEST_SRC)) $(O)/core.a $(LDFLAGS_ALL) -ldl -lm
	ln -sf libcuda.so.1 $(O)/lib/libcuda.so

$(O)/bin/cuvisor-vgpu: $(call obj,$(WORKER_SRC)) \
		$(call obj,$(O)/gen/digest_fatbin.c) $(O)/core.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(ZSTD_LIBS) $(CRYPTO_LIBS) -ldl -lm

$(O)/bin/cuvisord: $(call obj,$(DAEMON_SRC)) $(O)/core.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(CRYPTO_LIBS)

$(O)/bin/cuvisor: $(call obj,$(CLI_SRC)) $(O)/core.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(CRYPTO_LIBS)

# ---- begin: generated driver tables (scripts/gen-driver-table.py) ----
# build/gen/ is generated from the toolkit at build time, never committed:
# libcuda.map (the stub's exports), stubs.c (weak NOT_SUPPORTED definitions)
# and procaddr_table.c (cuGetProcAddress's table). The stamp orders the one
# script run; the script rewrites a file only when its content changes.
PYTHON ?= python3
GEN_FILES := $(O)/gen/libcuda.map $(O)/gen/stubs.c $(O)/gen/procaddr_table.c
GEN_INPUTS := $(CUDA_HOME)/include/cuda.h $(CUDA_HOME)/include/cudaTypedefs.h \
	$(CUDA_HOME)/lib64/stubs/libcuda.so

$(O)/gen/.stamp: scripts/gen-driver-table.py $(GEN_INPUTS)
	@mkdir -p $(dir $@)
	$(PYTHON) scripts/gen-driver-table.py --cuda-home $(CUDA_HOME) \
		--cc "$(CC)" --out $(O)/gen
	@touch $@

$(GEN_FILES): $(O)/gen/.stamp ;

# Generated sources include "procaddr.h" from guest/.
$(call obj,$(O)/gen/stubs.c $(O)/gen/procaddr_table.c): CFLAGS_ALL += -Iguest

# The lookup alone, against the weak stubs: no other guest file needed.
TEST_PROCADDR_SRC := tests/test_procaddr.c guest/procaddr.c core/log.c \
	core/util.c $(O)/gen/stubs.c $(O)/gen/procaddr_table.c

$(O)/tests/test_procaddr: $(call obj,$(TEST_PROCADDR_SRC))
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDFLAGS_ALL)

# CUresult names and descriptions for cuGetErrorName/String.
$(O)/gen/errors.c: scripts/gen-errors.py $(CUDA_HOME)/include/cuda.h
	@mkdir -p $(dir $@)
	$(PYTHON) scripts/gen-errors.py $(CUDA_HOME)/include/cuda.h $@
$(call obj,$(O)/gen/errors.c): CFLAGS_ALL += -Iguest
# ---- end: generated driver tables ----

-include worker/Makefile.inc
-include tests/Makefile.inc
-include fuzz/Makefile.inc
-include bench/Makefile.inc

clean:
	rm -rf $(O)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)

# ---- the demo (README's first command) ----
$(O)/examples/demo: $(O)/obj/examples/demo.o
	@mkdir -p $(dir $@)
	$(CC) -o $@ $< -L$(CUDA_HOME)/lib64/stubs -lcuda $(LDFLAGS_ALL)

# Runs the demo on a virtual GPU through a private cuvisord: on the GPU when
# the real driver finds one, else on the host backend (whose kernels are
# the host twins in build/tests/libtestkernels.so).
demo: all test-programs $(O)/examples/demo
	CUVISOR_HOST_KERNELS=$(abspath $(O))/tests/libtestkernels.so \
		$(O)/bin/cuvisor run -- $(O)/examples/demo
.PHONY: demo

# ---- install (PREFIX=/usr/local): binaries in bin/, the guest driver in
# lib/cuvisor/ where only `cuvisor run` points programs at it ----
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/cuvisor
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/cuvisor/libcuda.so.1
	ln -sf libcuda.so.1 $(DESTDIR)$(PREFIX)/lib/cuvisor/libcuda.so
.PHONY: install
