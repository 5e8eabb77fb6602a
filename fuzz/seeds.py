#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_decode: well-formed command sequences
(mode 0) that reach every handler, so mutations start from valid states.
With --mig, the corpus of fuzz_mig instead: a migration stream of every
record type (footers left 0: mode bit 0 has the harness fill them in) and
PLAN, ABORT and HELLO payloads on their own.

usage: seeds.py [--mig] OUTDIR
Opcode numbers and layouts follow core/proto.h and core/mig.h.
"""
import os
import struct
import sys

(NOP, MEM_GET_INFO, MEM_MAP, MEM_UNMAP, MEMCPY, MEMCPY_2D, MEMSET, HEAP_MAP,
 HEAP_UNMAP, BLOB_PUT, MODULE_LOAD, MODULE_UNLOAD, GET_FUNCTION, GET_GLOBAL,
 FUNC_GET_ATTR, FUNC_SET_ATTR, FUNC_SET_CACHE, LAUNCH, STREAM_CREATE,
 STREAM_DESTROY, STREAM_SYNC, STREAM_QUERY, STREAM_WAIT_EVENT, EVENT_CREATE,
 EVENT_DESTROY, EVENT_RECORD, EVENT_SYNC, EVENT_QUERY, EVENT_ELAPSED, CTX_SYNC,
 CTX_SET_LIMIT, CTX_GET_LIMIT, HOST_FUNC, OCCUPANCY, VMM_CREATE, VMM_RELEASE,
 VMM_MAP, VMM_UNMAP) = range(1, 39)

WIN = 0x400000000000
REGION = 0x3f0000000000
STAGING = REGION + 0x4000 + 128 * 4096 + (4 << 20)
HEAP = STAGING + 8 * (4 << 20)
G = 2 << 20
NOREPLY = 0xffffffff


def cmd(op, payload, reply=0, flags=0):
    return struct.pack('<HHII4x', op, flags, len(payload), reply) + payload


def async_(op, payload):
    return cmd(op, payload, NOREPLY)


def mem_map(va, size):
    return cmd(MEM_MAP, struct.pack('<QQ', va, size))


def memcpy(dst, src, n, kind, stream=0, signal=0, reply=NOREPLY):
    return cmd(MEMCPY, struct.pack('<QQQIII4x', dst, src, n, kind, stream,
                                   signal), reply)


def fatbin_module(mid):
    img = struct.pack('<IHHQ', 0xba55ed50, 1, 16, 32) + b'\0' * 32
    blob = async_(BLOB_PUT, struct.pack('<QQQI4x', 0, len(img), len(img), 0))
    return blob + cmd(MODULE_LOAD, struct.pack('<IIQ', mid, 0, len(img)))


def get_function(mid, fid, name):
    n = name.encode()
    return cmd(GET_FUNCTION, struct.pack('<IIIIII', mid, fid, 0, 0, len(n), 0)
               + n)


def launch(fid, stream, params):
    fixed = struct.pack('<II3I3IIIII', fid, stream, 1, 1, 1, 32, 1, 1, 0, 0,
                        len(params), 0)
    return async_(LAUNCH, fixed + params)


SEEDS = {
    'alloc_copy': mem_map(WIN, G) + memcpy(WIN, STAGING, 4096, 1)
    + memcpy(STAGING, WIN, 4096, 2, signal=1) + memcpy(WIN + 4096, WIN, 64, 3)
    + async_(MEM_UNMAP, struct.pack('<QQ', WIN, G)),
    'memset2d': mem_map(WIN, G) + async_(MEMSET, struct.pack(
        '<QQQQIIII', WIN, 256, 16, 8, 7, 4, 0, 0)) + async_(MEMCPY_2D,
        struct.pack('<QQQQQQIIII', WIN, 512, WIN + 8192, 256, 128, 4, 3, 0,
                    0, 0)),
    'heap': cmd(HEAP_MAP, struct.pack('<QQ', 0, 1 << 20)) + mem_map(WIN, G)
    + memcpy(WIN, HEAP, 1 << 20, 1, reply=3)
    + cmd(HEAP_UNMAP, struct.pack('<QQ', 0, 1 << 20)),
    'streams': cmd(STREAM_CREATE, struct.pack('<IIiI', 5, 1, -1, 0))
    + cmd(EVENT_CREATE, struct.pack('<II', 9, 0))
    + cmd(EVENT_CREATE, struct.pack('<II', 10, 0))
    + async_(EVENT_RECORD, struct.pack('<IIII', 5, 9, 0, 0))
    + async_(STREAM_WAIT_EVENT, struct.pack('<IIII', 0, 9, 0, 0))
    + async_(EVENT_RECORD, struct.pack('<IIII', 0, 10, 0, 0))
    + cmd(EVENT_ELAPSED, struct.pack('<II', 9, 10))
    + cmd(STREAM_SYNC, struct.pack('<II', 5, 0), flags=1)
    + cmd(STREAM_QUERY, struct.pack('<II', 5, 0))
    + cmd(EVENT_QUERY, struct.pack('<II', 10, 0))
    + cmd(EVENT_SYNC, struct.pack('<II', 9, 0))
    + async_(EVENT_DESTROY, struct.pack('<II', 9, 0))
    + async_(STREAM_DESTROY, struct.pack('<II', 5, 0)) + cmd(CTX_SYNC, b'')
    + cmd(NOP, b'', flags=1) + cmd(MEM_GET_INFO, b''),
    'module': fatbin_module(3) + get_function(3, 4, 'vec_add')
    + get_function(3, 5, 'fill_u32') + cmd(GET_GLOBAL, struct.pack(
        '<II', 3, 7) + b'counter') + cmd(FUNC_GET_ATTR, struct.pack(
            '<Iiq', 4, 0, 0)) + cmd(FUNC_SET_ATTR, struct.pack('<Iiq', 4, 8,
                                                                 1024))
    + async_(FUNC_SET_CACHE, struct.pack('<Iiq', 4, 0, 1))
    + cmd(OCCUPANCY, struct.pack('<IIiiQIi', 4, 1, 128, 0, 0, 0, 0))
    + mem_map(WIN, G) + launch(5, 0, struct.pack('<QIIII', WIN, 16, 7, 0, 0))
    + async_(MODULE_UNLOAD, struct.pack('<II', 3, 0)),
    'vmm': cmd(VMM_CREATE, struct.pack('<IIQ', 2, 0, 2 * G))
    + cmd(VMM_MAP, struct.pack('<QQQII', WIN + 8 * G, G, G, 2, 0))
    + memcpy(WIN + 8 * G, STAGING, 64, 1)
    + cmd(VMM_UNMAP, struct.pack('<QQ', WIN + 8 * G, G))
    + async_(VMM_RELEASE, struct.pack('<II', 2, 0)),
    'limits': cmd(CTX_SET_LIMIT, struct.pack('<IIQ', 0, 0, 4096))
    + cmd(CTX_GET_LIMIT, struct.pack('<IIQ', 0, 0, 0))
    + async_(HOST_FUNC, struct.pack('<QQQII', 0x1234, 0, 0, 0, 0)),
}


# ---- fuzz_mig (core/mig.h) ----

(M_HELLO, M_WELCOME, M_PLAN, M_DIGEST_REQ, M_DIGESTS, M_GRANULES,
 M_SLOT_FREE, M_ROUND_END, M_ROUND_DONE, M_STATE, M_READY, M_COMMIT,
 M_RUNNING, M_ABORT) = range(1, 15)
MIG_MAGIC = 0x313047494d564355
HEAP_MAX = 256 << 30
INLINE = 0xffffffff


def mig_rec(t, payload=b''):
    """A record with a zero footer (the harness fixes it up)."""
    return struct.pack('<II', t, len(payload)) + payload + b'\0' * 16


def mig_hello(nslots=4):
    return struct.pack('<QII16sQQQIIQIHH', MIG_MAGIC, 1, 0, b'T' * 16, 7,
                       1 << 30, 42, 64 << 10, nslots, 4 << 20, 2, 9, 0)


def mig_plan():
    b = struct.pack('<IIII', 1, 3, 2, 2)
    for va, size, vmm, off in ((WIN, 2 * G, 0, 0), (WIN + 4 * G, G, 7, G),
                               (WIN + 8 * G, 2 * G, 3, 0)):
        b += struct.pack('<QQIIQ', va, size, vmm, 0, off)
    for vid, rel, size in ((7, 0, 2 * G), (3, 1, 2 * G)):
        b += struct.pack('<IIQ', vid, rel, size)
    for off, ln in ((0, 4096), (1 << 20, 1 << 20)):
        b += struct.pack('<QQ', off, ln)
    return b


def mig_abort(code, msg):
    return struct.pack('<iI', code, 0) + msg.ljust(200, b'\0')


def mig_round(rnd, n=0, nbytes=0):
    return struct.pack('<IIQ', rnd, n, nbytes)


MIG_SEEDS = {
    # mode 1: footers fixed up; 5: and an fd the reader takes
    'stream': (5, mig_rec(M_HELLO, mig_hello()) + mig_rec(M_WELCOME,
               struct.pack('<II', 1234, 0)) + mig_rec(M_PLAN, mig_plan())
               + mig_rec(M_DIGEST_REQ, mig_round(1))
               + mig_rec(M_DIGESTS, mig_round(1, 2) + b'\x11' * 32)
               + mig_rec(M_GRANULES, struct.pack('<QII', WIN, 64, INLINE)
                         + bytes(range(64)))
               + mig_rec(M_GRANULES, struct.pack('<QII', WIN + G, 4096, 3))
               + mig_rec(M_SLOT_FREE, struct.pack('<II', 3, 0))
               + mig_rec(M_ROUND_END, mig_round(1, 0, 4160))
               + mig_rec(M_ROUND_DONE, mig_round(1))
               + mig_rec(M_STATE, struct.pack('<QQ', 0, 8) + b'STATEIMG')
               + mig_rec(M_READY) + mig_rec(M_COMMIT)
               + mig_rec(M_RUNNING, struct.pack('<Q', 150000))),
    'abort': (1, mig_rec(M_HELLO, mig_hello(0))
              + mig_rec(M_ABORT, mig_abort(-28, b'quota exceeded'))),
    'small_cap': (9, mig_rec(M_READY) + mig_rec(M_PLAN, mig_plan())),
    # mode 0: the payloads alone, for the decoders called directly
    'plan': (0, mig_plan()),
    'plan_quota': (16, mig_plan()),
    'abort_raw': (0, mig_abort(-5, b'destination\nwent away')),
    'hello_raw': (0, mig_hello()),
}


def main():
    args = sys.argv[1:]
    mig = args[:1] == ['--mig']
    if mig:
        args = args[1:]
    if len(args) != 1:
        sys.exit('usage: seeds.py [--mig] OUTDIR')
    out = args[0]
    os.makedirs(out, exist_ok=True)
    if mig:
        for name, (mode, data) in MIG_SEEDS.items():
            with open(os.path.join(out, 'mig_' + name), 'wb') as f:
                f.write(bytes([mode]) + data)
        return
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(b'\0' + data)  # mode byte 0: command records


if __name__ == '__main__':
    main()
