#!/usr/bin/env python3
"""test/bad/make_bad.py: writes the malformed .npy corpus in test/bad/ and
EXPECT.tsv (file <TAB> a word the one-line refusal must contain). Every file
here must be refused by every command that reads a .npy (test/cli_refusals.sh)
and by npy_read (test/test_npy.c). Also test/bad/semantic/: valid .npy files
with the wrong content for their role (labels, images), each refused by the
commands test/cli_refusals.sh names. Plain Python, no numpy:
    python3 test/bad/make_bad.py"""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def npy(dict_text, data=b"", major=1, minor=0, pad=True, raw_len=None):
    prefix = 10 if major == 1 else 12
    h = dict_text.encode("latin1")
    if pad:
        total = (prefix + len(h) + 1 + 63) // 64 * 64
        h = h + b" " * (total - prefix - len(h) - 1) + b"\n"
    n = len(h) if raw_len is None else raw_len
    ln = struct.pack("<H", n) if major == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes([major, minor]) + ln + h + data


def d(descr="<f4", shape="(2, 3)", order="False"):
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, order, shape)


F6 = struct.pack("<6f", *range(6))
good = npy(d(), F6)
cases = [  # name, bytes, expected word in the message
    ("empty.npy", b"", "not a .npy file"),
    ("text_file.npy", b"1,2,3\n4,5,6\n", "not a .npy file"),
    ("bad_magic.npy", b"\x93NUMPZ" + good[6:], "not a .npy file"),
    ("version_9.npy", good[:6] + b"\x09\x00" + good[8:], "version 9.0"),
    ("truncated_preamble.npy", good[:9], "truncated"),
    ("truncated_header.npy", good[:40], "truncated"),
    ("header_len_huge.npy", npy(d(), F6, major=2, raw_len=0xFFFFFFF0), "exceeds the limit"),
    ("no_newline.npy", npy(d(), F6, pad=False), "newline"),
    ("missing_shape.npy", npy("{'descr': '<f4', 'fortran_order': False, }", F6), "missing key 'shape'"),
    ("duplicate_descr.npy", npy("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)}", F6),
     "appears twice"),
    ("unknown_key.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}", F6),
     "unexpected key"),
    ("fortran_true.npy", npy(d(order="True"), F6), "fortran_order"),
    ("big_endian_int16.npy", npy(d(">i2"), struct.pack(">6h", *range(6))), "'>i2'"),
    ("dtype_object.npy", npy(d("|O"), b"\0" * 48), "'|O'"),
    ("dtype_int16.npy", npy(d("<i2"), b"\0" * 12), "'<i2'"),
    ("structured.npy", npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", F6),
     "structured"),
    ("negative_shape.npy", npy(d(shape="(-2, 3)"), F6), "negative"),
    ("float_shape.npy", npy(d(shape="(2.0, 3)"), F6), "integers"),
    ("shape_overflow.npy", npy(d(shape="(4294967296, 4294967296)"), F6), "too large for this address space"),
    ("nine_dims.npy", npy(d(shape="(1, 1, 1, 1, 1, 1, 1, 2, 3)"), F6), "more than 8 dimensions"),
    ("data_short.npy", npy(d(), F6[:20]), "needs 24"),
    ("data_long.npy", npy(d(), F6 + b"\0"), "needs 24"),
    ("trailing_garbage.npy", npy(d() + " x", F6), "after the dict"),
    ("non_ascii.npy", npy(d().replace("}", "'\xe9': 1}"), F6), "not printable ASCII"),
]

for name, content, _ in cases:
    with open(os.path.join(here, name), "wb") as f:
        f.write(content)
with open(os.path.join(here, "EXPECT.tsv"), "w") as f:
    f.write("# file\tword the refusal must contain (written by make_bad.py)\n")
    for name, _, word in cases:
        f.write(f"{name}\t{word}\n")
print(f"{here}: {len(cases)} malformed .npy files + EXPECT.tsv")

# well-formed .npy files with the wrong content for a role (labels, images);
# test/cli_refusals.sh names each one with the command that must refuse it
sem = os.path.join(here, "semantic")
os.makedirs(sem, exist_ok=True)
semantic = [
    ("labels_2d.npy", npy(d("<i8", "(300, 1)"), b"\0" * 8 * 300)),
    ("labels_negative.npy", npy(d("<i8", "(300,)"), struct.pack("<300q", *([0, 1, 2, -1] + [0] * 296)))),
    ("labels_fraction.npy", npy(d("<f4", "(300,)"), struct.pack("<300f", *([0.5] + [1.0] * 299)))),
    ("labels_short.npy", npy(d("<i8", "(299,)"), b"\0" * 8 * 299)),
    ("images_2ch.npy", npy(d("|u1", "(2, 8, 8, 2)"), b"\0" * 256)),
    ("images_f4.npy", npy(d("<f4", "(2, 8, 8, 3)"), struct.pack("<384f", *([0.5] * 384)))),
    ("images_empty.npy", npy(d("|u1", "(0, 8, 8, 3)"))),
    ("images_f4_whole.npy", npy(d("<f4", "(2, 8, 8, 3)"), struct.pack("<384f", *([7.0] * 384)))),
    # features [300, 40] (the size of test/fixtures/lasso) with a NaN at row 7, column 3
    ("features_nan.npy", npy(d("<f4", "(300, 40)"), struct.pack("<12000f", *([0.5] * 283 + [float("nan")] + [0.5] * 11716)))),
]
for name, content in semantic:
    with open(os.path.join(sem, name), "wb") as f:
        f.write(content)
print(f"{sem}: {len(semantic)} well-formed files with wrong content")
