"""Reference crops for face-data's facenet_crop (facenet-pytorch from PyPI).

    python tools/reference_facenet_crop.py crates/face-data/tests/fixtures/align

Reads obama_face.png (written by reference_align.py) and writes, for each case below,
facenet_<size>_<margin>.png: facenet_pytorch's extract_face(PIL image, box, size, margin) as
8-bit RGB (the crop is whole pixels, so PNG is lossless), and facenet_cases.json listing the
boxes.
"""
import json
import os
import sys

import numpy as np
from PIL import Image
from facenet_pytorch.models.utils.detect_face import extract_face

out = sys.argv[1]
src = Image.open(os.path.join(out, "obama_face.png")).convert("RGB")
cases = [
    {"box": [31.7, 18.2, 88.4, 90.9], "size": 40, "margin": 0},
    {"box": [31.7, 18.2, 88.4, 90.9], "size": 40, "margin": 12},
    # A box over the photo's edge: clipped before the resize.
    {"box": [-6.5, 40.25, 70.0, 121.5], "size": 48, "margin": 8},
]
for c in cases:
    face = extract_face(src, np.array(c["box"]), c["size"], c["margin"])
    arr = face.permute(1, 2, 0).numpy().round().astype(np.uint8)
    c["file"] = f"facenet_{c['size']}_{c['margin']}.png"
    Image.fromarray(arr).save(os.path.join(out, c["file"]))
json.dump(cases, open(os.path.join(out, "facenet_cases.json"), "w"), indent=1)
print("wrote", [c["file"] for c in cases])
