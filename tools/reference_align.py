"""Reference values for face-data's alignment tests (scikit-image + Pillow from PyPI).

    python tools/reference_align.py crates/face-data/tests/fixtures/align

Writes
- obama_face.png: the face region of data/faces/obama.jpg decoded by Pillow, halved (lossless
  PNG, so the Rust test warps exactly the pixels scikit-image warped);
- align_reference.json: SimilarityTransform.estimate matrices for the hand-marked landmarks
  and for random point sets; Pillow's decode statistics of data/faces/obama.jpg;
- warp_56.f32: skimage.transform.warp(order=1, mode="constant", cval=0, preserve_range=True)
  of obama_face.png onto the ArcFace template at half scale (56×56×3 float32 LE).
"""
import json
import os
import sys

import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform, warp

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                    [41.5493, 92.3655], [70.7299, 92.2041]])
# Hand-marked on data/faces/obama.jpg (eyes' centres, nose tip, mouth corners), in pixels.
OBAMA = np.array(json.load(open("data/faces/landmarks.json"))["obama.jpg"])

full = Image.open("data/faces/obama.jpg").convert("RGB")
arr = np.asarray(full, dtype=np.float64)
x0, y0 = 380, 160
crop = full.crop((x0, y0, x0 + 240, y0 + 220)).resize((120, 110), Image.BILINEAR)
crop.save(os.path.join(out, "obama_face.png"))
# Landmarks in the halved crop: Pillow's resize maps pixel centres, x' = (x + 0.5)/2 - 0.5.
lm = (OBAMA - [x0, y0] + 0.5) / 2.0 - 0.5
dst = ARCFACE / 2.0

t = SimilarityTransform()
assert t.estimate(lm.astype(np.float32), dst)
src_img = np.asarray(crop, dtype=np.float64)
warped = warp(src_img, t.inverse, output_shape=(56, 56), order=1, mode="constant", cval=0.0, preserve_range=True)
warped.astype("<f4").tofile(os.path.join(out, "warp_56.f32"))

full_t = SimilarityTransform()
assert full_t.estimate(OBAMA.astype(np.float32), ARCFACE)

rng = np.random.default_rng(42)
cases = []
for i in range(8):
    src = rng.uniform(0, 400, size=(5, 2)).astype(np.float32)
    d = rng.uniform(0, 112, size=(5, 2))
    tt = SimilarityTransform()
    assert tt.estimate(src, d)
    cases.append({"src": src.tolist(), "dst": d.tolist(), "matrix": tt.params[:2].tolist()})

ys = rng.integers(0, arr.shape[0], 64)
xs = rng.integers(0, arr.shape[1], 64)
ref = {
    "arcface_template": ARCFACE.tolist(),
    "obama_landmarks": OBAMA.tolist(),
    "obama_to_arcface_112": full_t.params[:2].tolist(),
    "crop_landmarks": lm.tolist(),
    "crop_template": dst.tolist(),
    "crop_matrix": t.params[:2].tolist(),
    "random_cases": cases,
    "obama_decode": {
        "width": arr.shape[1], "height": arr.shape[0],
        "mean_rgb": arr.reshape(-1, 3).mean(axis=0).tolist(),
        "samples": [[int(x), int(y), arr[y, x].tolist()] for x, y in zip(xs, ys)],
    },
}
json.dump(ref, open(os.path.join(out, "align_reference.json"), "w"), indent=1)
print("wrote", out)
