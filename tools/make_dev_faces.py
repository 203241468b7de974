"""Copies ../shared/dev-faces into data/dev-faces (resized), and builds its tight-crop sets.

Step 1 (`copy`): every photo whose longer side exceeds 640 px is resized to 640 px on that side
(Lanczos, JPEG quality 92); smaller photos are copied byte for byte. The pair list is copied
unchanged (its paths are relative to images/). SHA256SUMS lists the committed files.

Step 2 (`tight`, after `facekit detect data/dev-faces/images --out DET.json`): for each photo,
the largest MTCNN box, squared around its centre (no margin; `--margin -0.1` shrinks it to
80 %, cutting forehead and chin), clipped to the frame, is cropped and resized to 150 × 150 px
(Lanczos) into DST/tight/, and a greyscale copy (ITU-R 601 luma, saved as 3-channel RGB JPEG)
into DST/tight-grey/. These stand for the "tight 150-px crop" inputs that MTCNN used to lose.

Usage:
    python tools/make_dev_faces.py copy  [--src ../shared/dev-faces] [--dst data/dev-faces]
    python tools/make_dev_faces.py tight --detections DET.json [--dst data/dev-faces] [--margin M]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from PIL import Image

MAX_SIDE = 640
TIGHT_SIDE = 150


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy(src: Path, dst: Path) -> None:
    images = sorted((src / "images").glob("*/*.jpg"))
    resized = 0
    for f in images:
        rel = f.relative_to(src / "images")
        out = dst / "images" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(f) as im:
            w, h = im.size
            if max(w, h) <= MAX_SIDE:
                shutil.copyfile(f, out)
                continue
            s = MAX_SIDE / max(w, h)
            im = im.convert("RGB").resize((round(w * s), round(h * s)), Image.LANCZOS)
            im.save(out, quality=92)
            resized += 1
    shutil.copyfile(src / "pairs.tsv", dst / "pairs.tsv")
    print(f"{len(images)} photos ({resized} resized to {MAX_SIDE} px) → {dst}")


def tight(detections: Path, dst: Path, margin: float) -> None:
    doc = json.loads(detections.read_text())
    made = 0
    for entry in doc["images"]:
        rel = Path(entry["image"])
        faces = entry["faces"]
        if not faces:
            print(f"{rel}: no face, skipped")
            continue
        box = max(faces, key=lambda f: (f["bbox"][2] - f["bbox"][0]) * (f["bbox"][3] - f["bbox"][1]))["bbox"]
        x1, y1, x2, y2 = box[:4]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        side = max(x2 - x1, y2 - y1) * (1 + 2 * margin)
        src = dst / "images" / rel
        with Image.open(src) as im:
            im = im.convert("RGB")
            l, t = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
            r, b = min(im.width, round(cx + side / 2)), min(im.height, round(cy + side / 2))
            crop = im.crop((l, t, r, b)).resize((TIGHT_SIDE, TIGHT_SIDE), Image.LANCZOS)
        for folder, image in (("tight", crop), ("tight-grey", crop.convert("L").convert("RGB"))):
            out = dst / folder / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            image.save(out, quality=92)
        made += 1
    print(f"{made} tight crops and greyscale copies → {dst}/tight, {dst}/tight-grey")


def sums(dst: Path) -> None:
    lines = [
        f"{sha256(p)}  {p.relative_to(dst).as_posix()}"
        for p in sorted(dst.rglob("*"))
        if p.is_file() and p.name not in ("SHA256SUMS", "NOTICE.md")
    ]
    (dst / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["copy", "tight"])
    ap.add_argument("--src", type=Path, default=Path("../shared/dev-faces"))
    ap.add_argument("--dst", type=Path, default=Path("data/dev-faces"))
    ap.add_argument("--detections", type=Path)
    ap.add_argument("--margin", type=float, default=0.0, help="per side, as a fraction of the box")
    a = ap.parse_args()
    if a.step == "copy":
        copy(a.src, a.dst)
    else:
        if a.detections is None:
            ap.error("tight needs --detections (from `facekit detect`)")
        tight(a.detections, a.dst, a.margin)
    sums(a.dst)


if __name__ == "__main__":
    main()
