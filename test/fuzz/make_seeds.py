#!/usr/bin/env python3
"""test/fuzz/make_seeds.py: writes the seed corpora test/fuzz/corpus_npy/ and
test/fuzz/corpus_config/ (small valid and almost-valid inputs; the fuzzer
mutates from there). Plain Python, no numpy. Run from anywhere:
    python3 test/fuzz/make_seeds.py"""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def npy(dict_text, data=b"", major=1, minor=0, pad=True):
    prefix = 10 if major == 1 else 12
    h = dict_text.encode("latin1")
    if pad:
        total = (prefix + len(h) + 1 + 63) // 64 * 64
        h = h + b" " * (total - prefix - len(h) - 1) + b"\n"
    ln = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, minor]) + ln + h + data


def d(descr, shape, order="False"):
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, order, shape)


npy_seeds = {
    "f4_2x3": npy(d("<f4", "(2, 3)"), struct.pack("<6f", 0, -0.0, 1.5, 2.5, -3, 1e30)),
    "f8_3": npy(d("<f8", "(3,)"), struct.pack("<3d", 0.1, 1e300, -2)),
    "u1_2x2x1": npy(d("|u1", "(2, 2, 1)"), bytes([0, 1, 254, 255])),
    "u1_lt": npy(d("<u1", "(2,)"), bytes([3, 4])),
    "i4_4": npy(d("<i4", "(4,)"), struct.pack("<4i", -2**31, 2**31 - 1, 0, 256)),
    "i8_2x1": npy(d("<i8", "(2, 1)"), struct.pack("<2q", -2**63, 255)),
    "f4_scalar": npy(d("<f4", "()"), struct.pack("<f", 3.5)),
    "f4_0x3": npy(d("<f4", "(0, 3)")),
    "f4_v2": npy(d("<f4", "(2,)"), struct.pack("<2f", 1, 2), major=2),
    "i8_v3": npy(d("<i8", "(1,)"), struct.pack("<q", 7), major=3),
    "nospace": npy("{'descr':'<f4','fortran_order':False,'shape':(1,1,1,1,1,1,1,1)}", struct.pack("<f", 1)),
    "dquote": npy('{"shape": (1,), "descr": "<f8", "fortran_order": False}', struct.pack("<d", 2.0)),
    "long_L": npy(d("<i4", "(2L,)"), struct.pack("<2i", 1, 2)),
    "bad_fortran": npy(d("<f4", "(2,)", "True"), struct.pack("<2f", 1, 2)),
    "bad_be": npy(d(">f4", "(1,)"), struct.pack(">f", 1)),
    "bad_dup": npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", b"\0" * 4),
    "bad_overflow": npy(d("<f8", "(4294967296, 4294967296)")),
    "bad_short": npy(d("<f4", "(10, 30)"), b"\0" * 1000),
    "bad_version": npy(d("<f4", "(1,)"), b"\0" * 4, major=4),
    "bad_nonl": npy(d("<f4", "(1,)"), b"", pad=False),
}

cfg_seeds = {
    "resnet": "arch = resnet50\ninput_size = 224\nnormalize = imagenet\nvariant = v1.5\n"
              "units = 3,4,6,3\nbn_eps = 1e-5\npadding = symmetric\n",
    "vit": "# ViT-B/16\narch = vit\ninput_size = 224   # pixels\nnormalize = inception\n\n"
           "ln_eps = 1e-6\ngelu = erf\n",
    "crlf": "arch = vit\r\ninput_size=8\r\n",
    "list": "units = 1, 2 ,3\nx=-0.5e-3\n",
    "bad_dup": "a = 1\na = 2\n",
    "bad_nokey": "= 3\n",
    "long": "k" * 60 + " = " + "v" * 250 + "\n",
}

for sub, seeds, mode in (("corpus_npy", npy_seeds, "wb"), ("corpus_config", cfg_seeds, "w")):
    out = os.path.join(here, sub)
    os.makedirs(out, exist_ok=True)
    for name, content in seeds.items():
        with open(os.path.join(out, name), mode, newline="" if mode == "w" else None) as f:
            f.write(content)
    print(f"{out}: {len(seeds)} seeds")
