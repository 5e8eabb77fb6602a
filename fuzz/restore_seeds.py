#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seeds for fuzz/fuzz_restore.c: records (u8 type, u8 flags, u64 aux,
u32 len, payload) with well-formed META and OBJECTS sections and device
memory that covers their ranges, so that the fuzzer starts from restores
that succeed. Usage: restore_seeds.py DIR"""
import os
import struct
import sys

WINDOW = 0x400000000000
GRANULE = 2 << 20
SEC_META, SEC_OBJECTS, SEC_MODIMG, SEC_MEM, SEC_GLOBAL = 1, 2, 3, 4, 5


def rec(t, aux, payload=None, fill=0):
    if payload is None:
        return struct.pack("<BBQI", t, 1, aux, fill)
    return struct.pack("<BBQI", t, 0, aux, len(payload)) + payload


def meta(ranges, heap=()):
    """META version 1: device ranges as (address, size)."""
    b = struct.pack("<IQII", 1, 64 << 20, 0, 0) + b"\0" * (8 * 16)
    b += struct.pack("<I", len(heap))
    for off, ln in heap:
        b += struct.pack("<QQ", off, ln)
    b += struct.pack("<I", len(ranges))
    for va, size in ranges:
        b += struct.pack("<QQ", va, size)
    return b + struct.pack("<Q", 0)


def meta2(ranges, vmms):
    """META version 2: ranges (address, size, handle, offset), then the
    VMM handles (id, size, released)."""
    b = struct.pack("<IQII", 2, 64 << 20, 0, 0) + b"\0" * (8 * 16)
    b += struct.pack("<I", 0)
    b += struct.pack("<I", len(ranges))
    for va, size, h, off in ranges:
        b += struct.pack("<QQIQ", va, size, h, off)
    b += struct.pack("<QI", 0, len(vmms))
    for hid, size, rel in vmms:
        b += struct.pack("<IQI", hid, size, rel)
    return b


def objects(streams=(), events=()):
    b = struct.pack("<III", 1, 0, 0)  # version, no images, no modules
    b += struct.pack("<I", 0)  # no functions
    b += struct.pack("<I", len(streams))
    for sid, flags, prio in streams:
        b += struct.pack("<IIi", sid, flags, prio)
    b += struct.pack("<I", len(events))
    for eid, flags in events:
        b += struct.pack("<II", eid, flags)
    return b


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {
        "empty": rec(SEC_META, 0, meta([])) + rec(SEC_OBJECTS, 0, objects()),
        "objs": rec(SEC_META, 0, meta([], [(0, 4096)])) +
        rec(SEC_OBJECTS, 0, objects([(1, 1, 0), (2, 0, -1)], [(1, 2)])),
        "one-range": rec(SEC_META, 0, meta([(WINDOW, GRANULE)])) +
        rec(SEC_OBJECTS, 0, objects()) +
        rec(SEC_MEM, WINDOW, fill=GRANULE),
        "two-ranges": rec(SEC_META, 0, meta([(WINDOW, GRANULE),
                                             (WINDOW + 4 * GRANULE,
                                              2 * GRANULE)])) +
        rec(SEC_OBJECTS, 0, objects([(3, 1, 0)])) +
        rec(SEC_MEM, WINDOW, fill=GRANULE) +
        rec(SEC_MEM, WINDOW + 4 * GRANULE, fill=2 * GRANULE),
        # two handles side by side, the first one aliased
        "vmm": rec(SEC_META, 0, meta2([(WINDOW, GRANULE, 1, 0),
                                       (WINDOW + GRANULE, GRANULE, 2, 0),
                                       (WINDOW + 8 * GRANULE, GRANULE, 1,
                                        0)],
                                      [(1, GRANULE, 1), (2, GRANULE, 0)])) +
        rec(SEC_OBJECTS, 0, objects()) +
        rec(SEC_MEM, WINDOW, fill=GRANULE) +
        rec(SEC_MEM, WINDOW + GRANULE, fill=GRANULE) +
        rec(SEC_MEM, WINDOW + 8 * GRANULE, fill=GRANULE),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
