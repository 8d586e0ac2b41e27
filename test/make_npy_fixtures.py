#!/usr/bin/python3
"""test/make_npy_fixtures.py: writes the tiny .npy files in test/fixtures/npy/
with numpy itself, so test/test_npy.c can check that our reader agrees with
numpy's writer. The values are repeated, literally, in test_npy.c.
Run: /usr/bin/python3 test/make_npy_fixtures.py   (needs numpy; offline tool)"""
import os
import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "npy")
os.makedirs(out, exist_ok=True)


def save(name, a, version=None):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, a, version=version, allow_pickle=False)
    print(f"{path}: {a.dtype.str} {a.shape} v{version or 'auto'}")


u8 = np.array([[0, 1, 127], [128, 254, 255]], dtype=np.uint8)
f4 = np.array([[0.0, -0.0, 1.5, -2.25],
               [3.4028234663852886e38, 1.401298464324817e-45, 0.1, -1e-30],
               [np.inf, -np.inf, 16777216.0, -7.0]], dtype=np.float32)
f8 = np.array([0.1, -2.5, 1e300, 5e-324, 123456789.0], dtype=np.float64)
i4 = np.array([[[-2147483648, 2147483647], [0, -1]], [[1, 2], [300, -300]]], dtype=np.int32)
i8 = np.array([-9223372036854775808, 9223372036854775807, 0, 4294967296], dtype=np.int64)

save("u8_2x3.npy", u8)
save("f4_3x4.npy", f4)
save("f8_5.npy", f8)
save("i4_2x2x2.npy", i4)
save("i8_4.npy", i8)
save("f4_scalar.npy", np.array(3.5, dtype=np.float32))
save("f4_0x3.npy", np.zeros((0, 3), dtype=np.float32))
save("f4_3x4_v2.npy", f4, version=(2, 0))
save("f4_3x4_v3.npy", f4, version=(3, 0))
save("i8_4_v2.npy", i8, version=(2, 0))
# the same values big-endian, as numpy writes them with dtype '>f4' etc.
save("be_f4_3x4.npy", f4.astype(">f4"))
save("be_f8_5.npy", f8.astype(">f8"))
save("be_i4_2x2x2.npy", i4.astype(">i4"))
save("be_i8_4.npy", i8.astype(">i8"))
# refused by our reader (kept to check the messages against numpy's own files)
save("bad_fortran_2x3.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
save("bad_int16_3.npy", np.array([1, 2, 3], dtype=np.int16))
save("bad_bool_3.npy", np.array([True, False, True]))
