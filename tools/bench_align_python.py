"""Python anchor for benches/data.rs: decode → 5-point similarity align → normalise to a
112×112 planar float32 crop, on the files the Rust bench wrote to out/bench-faces/.

    cargo bench --bench data            # writes out/bench-faces/ and measures Rust
    python tools/bench_align_python.py  # same sitting: Pillow + scikit-image (+ OpenCV)

Both Python pipelines are single-threaded (as a Python data-loader worker is); figures are
images per second, median of 7 runs over the whole set.
"""
import json
import statistics
import time

import numpy as np
from PIL import Image
from skimage.transform import SimilarityTransform, warp

ARCFACE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                    [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)

m = json.load(open("out/bench-faces/manifest.json"))
small = [(s["path"], np.array(s["landmarks"], dtype=np.float32)) for s in m["small"]]
large = [(m["large"]["path"], np.array(m["large"]["landmarks"], dtype=np.float32))] * m["large"]["repeat"]


def skimage_pipeline(path, lm):
    img = np.asarray(Image.open(path).convert("RGB"))
    t = SimilarityTransform()
    t.estimate(lm, ARCFACE)
    crop = warp(img, t.inverse, output_shape=(112, 112), order=1, mode="constant", cval=0, preserve_range=True)
    return ((crop.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1).copy()


def opencv_pipeline(path, lm):
    import cv2
    img = np.asarray(Image.open(path).convert("RGB"))
    t = SimilarityTransform()
    t.estimate(lm, ARCFACE)
    crop = cv2.warpAffine(img, t.params[0:2, :], (112, 112), borderValue=0.0)
    return ((crop.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1).copy()


def rate(fn, jobs, runs=7):
    fn(*jobs[0])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for j in jobs:
            fn(*j)
        times.append(time.perf_counter() - t0)
    return len(jobs) / statistics.median(times)


import warnings
warnings.simplefilter("ignore", FutureWarning)
for name, jobs in [("lfw_250px", small), ("photo_910x1137", large)]:
    print(f"{name}: Pillow+skimage {rate(skimage_pipeline, jobs):8.1f} img/s", end="")
    try:
        print(f"   Pillow+OpenCV {rate(opencv_pipeline, jobs):8.1f} img/s")
    except ImportError:
        print("   (OpenCV not installed)")
