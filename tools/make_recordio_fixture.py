"""Writes a tiny insightface-style RecordIO set with MXNet's own writer, so the Rust reader is
tested against files produced by the reference implementation rather than by our writer.

Run once (MXNet 1.9.1 from PyPI, numpy<1.24, Pillow, in a scratch venv):
    python tools/make_recordio_fixture.py crates/face-data/tests/fixtures/recordio
Writes train.rec, train.idx and expected.json (per-record header, labels, payload SHA-256,
and the mean RGB of the image as decoded by Pillow).
"""
import hashlib
import io
import json
import os
import sys

import mxnet as mx
import numpy as np
from PIL import Image

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
MAGIC = (0xCED7230A).to_bytes(4, "little")


def jpeg(seed, size=(12, 10), with_magic=False):
    r = np.random.default_rng(seed)
    arr = r.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    if with_magic:
        # Trailing bytes after EOI (ignored by decoders) holding the magic word at a 4-byte
        # aligned offset of the whole record (24-byte header + payload), so MXNet must split
        # the record into parts.
        pad = (-(24 + len(data))) % 4
        data = data + b"\0" * pad + MAGIC + b"tail" + MAGIC + b"end!"
    return data


identities = [0, 0, 1, 1, 1, 2]
n = len(identities)
rec = mx.recordio.MXIndexedRecordIO(os.path.join(out, "train.idx"), os.path.join(out, "train.rec"), "w")
expected = {}
# Record 0: insightface's header, labels [first identity-header key, end].
header0 = mx.recordio.IRHeader(2, [n + 1, n + 1 + 3], 0, 0)
rec.write_idx(0, mx.recordio.pack(header0, b""))
expected[0] = {"flag": 2, "labels": [n + 1, n + 4], "payload_len": 0}
for k in range(1, n + 1):
    data = jpeg(k, with_magic=(k == 3))
    labels = float(identities[k - 1]) if k != 5 else [float(identities[k - 1]), 37.0]
    flag = 0 if k != 5 else 2
    h = mx.recordio.IRHeader(flag, labels, k, 0)
    rec.write_idx(k, mx.recordio.pack(h, data))
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    expected[k] = {
        "flag": flag,
        "labels": [labels] if flag == 0 else labels,
        "id": k,
        "payload_len": len(data),
        "payload_sha256": hashlib.sha256(data).hexdigest(),
        "width": img.shape[1],
        "height": img.shape[0],
        "mean_rgb": img.reshape(-1, 3).mean(axis=0).tolist(),
    }
# Identity headers: label [start, end) image range, as insightface's sets carry.
start = 1
for ident in range(3):
    end = start + identities.count(ident)
    rec.write_idx(n + 1 + ident, mx.recordio.pack(mx.recordio.IRHeader(2, [start, end], 0, 0), b""))
    start = end
rec.close()
# Check the reader round trip, including the split record.
r = mx.recordio.MXIndexedRecordIO(os.path.join(out, "train.idx"), os.path.join(out, "train.rec"), "r")
h, s = mx.recordio.unpack(r.read_idx(3))
assert hashlib.sha256(s).hexdigest() == expected[3]["payload_sha256"]
raw = open(os.path.join(out, "train.rec"), "rb").read()
expected["multi_part_records"] = raw.count(MAGIC) - len(r.keys)
json.dump(expected, open(os.path.join(out, "expected.json"), "w"), indent=1)
print("wrote", out, "split parts:", expected["multi_part_records"])
