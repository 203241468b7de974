"""Reference outputs for face-detect's and face-teachers' parity tests.

    python tools/reference_teachers.py            # writes the two fixture directories below

Needs numpy, Pillow, scikit-image, torch, facenet-pytorch 2.6.0 and onnxruntime (PyPI), and the
bundled files of models/ and data/faces/ (tools/fetch_models.sh).

MTCNN (crates/face-detect/tests/fixtures/mtcnn_reference.json):
- `nets`: P-, R- and O-Net outputs of facenet-pytorch's own classes with the bundled
  `models/{p,r,o}net.pt` on a deterministic input x[i] = 0.5·sin(0.37·i) over the flattened
  tensor, so the Rust test rebuilds it without a fixture.
- `images`: for every bundled image, `MTCNN(keep_all=True).detect(img, landmarks=True)` with the
  library's defaults (min face 20, thresholds 0.6/0.7/0.7, factor 0.709, largest box first):
  boxes (x1, y1, x2, y2), probabilities and the 5 landmarks, plus the image's decoded pixel
  mean, so a test can tell a decoder difference from a detector difference.

Teachers (crates/face-teachers/tests/fixtures/):
- For every detected face with probability ≥ 0.9 (faces in order of the MTCNN output):
  the identity crop (ArcFace 112×112 template) and the age/gender crops (dlib's chip geometry
  with padding 0.2, at 64 and 32 pixels, template points in MTCNN's landmark order, see
  `DLIB_MTCNN` below), each a similarity from the landmarks (scikit-image's least-squares
  estimate, as insightface's `estimate_norm`) and a bilinear warp with a black border, rounded to
  8 bits; the crops are saved as PNG (`crops/<face>_{112,64,32}.png`) so the Rust test feeds
  exactly these pixels.
- onnxruntime 1.x outputs of the bundled ONNX files on those crops: `fr_feature.onnx` on
  (RGB − 127)/128 (the normalisation of faceplugin's fr_feature.js; raw and L2-normalised
  embedding), `age-v1.onnx` on (RGB − mean)/256 (81 probabilities and the expected age with the
  package's bin weights 0.25, 1, …, 80) and `gender-v1.onnx` (probabilities female/male).
"""
import hashlib
import json
import os

import numpy as np
import onnxruntime as ort
import torch
from facenet_pytorch import MTCNN
from PIL import Image
from skimage.transform import SimilarityTransform, warp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FACES = os.path.join(ROOT, "data", "faces")
MODELS = os.path.join(ROOT, "models")
DETECT_OUT = os.path.join(ROOT, "crates", "face-detect", "tests", "fixtures")
TEACH_OUT = os.path.join(ROOT, "crates", "face-teachers", "tests", "fixtures")

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
# The ArcFace template carried into dlib's unit-square chip frame by the similarity that puts its
# eye centres on the centres of dlib's eye-corner pairs (face-teachers' `DLIB_MTCNN_5`).
DLIB_MTCNN = np.array(
    [
        [0.2273300617, 0.2213958465],
        [0.7528139680, 0.2212327963],
        [0.4901743880, 0.5216238018],
        [0.2726989535, 0.8281217441],
        [0.7078622376, 0.8279867254],
    ]
)
AGE_BINS = np.array([0.25] + list(range(1, 81)), dtype=np.float32)
AG_MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)


def det_input(shape):
    n = int(np.prod(shape))
    return (0.5 * np.sin(0.37 * np.arange(n, dtype=np.float64))).astype(np.float32).reshape(shape)


def crop(img, landmarks, template, size):
    t = SimilarityTransform.from_estimate(np.asarray(landmarks, dtype=np.float64), template)
    assert t
    out = warp(img, t.inverse, output_shape=(size, size), order=1, mode="constant", cval=0.0, preserve_range=True)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


def dlib_template(size, padding=0.2):
    return (padding + DLIB_MTCNN) / (1 + 2 * padding) * size


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    torch.manual_seed(0)
    os.makedirs(DETECT_OUT, exist_ok=True)
    os.makedirs(os.path.join(TEACH_OUT, "crops"), exist_ok=True)
    mtcnn = MTCNN(keep_all=True, device="cpu")
    nets = {}
    with torch.no_grad():
        for name, net, shape in [("pnet", mtcnn.pnet, (1, 3, 30, 40)), ("rnet", mtcnn.rnet, (2, 3, 24, 24)), ("onet", mtcnn.onet, (2, 3, 48, 48))]:
            outs = net(torch.from_numpy(det_input(shape)))
            nets[name] = {"input_shape": list(shape), "outputs": [o.numpy().ravel().tolist() for o in outs], "shapes": [list(o.shape) for o in outs]}

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    fr = ort.InferenceSession(os.path.join(MODELS, "fr_feature.onnx"), so, providers=["CPUExecutionProvider"])
    age = ort.InferenceSession(os.path.join(MODELS, "age-v1.onnx"), so, providers=["CPUExecutionProvider"])
    gender = ort.InferenceSession(os.path.join(MODELS, "gender-v1.onnx"), so, providers=["CPUExecutionProvider"])

    # A lossless multi-face image: JPEG decoders differ by a level here and there (Pillow's
    # libjpeg-turbo vs the Rust side's zune-jpeg), which moves MTCNN's boxes by up to a few pixels
    # and can flip a candidate near a threshold; on this PNG both sides see the same pixels.
    t1 = Image.open(os.path.join(FACES, "t1.jpg")).convert("RGB")
    t1.resize((t1.width * 3 // 4, t1.height * 3 // 4), Image.BILINEAR).save(os.path.join(DETECT_OUT, "t1_three_quarters.png"))
    sources = [(f, os.path.join(FACES, f)) for f in sorted(os.listdir(FACES)) if f.lower().endswith((".jpg", ".png"))]
    sources.append(("fixtures/t1_three_quarters.png", os.path.join(DETECT_OUT, "t1_three_quarters.png")))

    images, faces = {}, []
    for file, path in sources:
        img = np.asarray(Image.open(path).convert("RGB"))
        boxes, probs, points = mtcnn.detect(Image.fromarray(img), landmarks=True)
        if boxes is None:
            boxes, probs, points = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        images[file] = {
            "width": img.shape[1],
            "height": img.shape[0],
            "mean_rgb": img.reshape(-1, 3).mean(axis=0).tolist(),
            "boxes": np.asarray(boxes, dtype=np.float64).tolist(),
            "probs": np.asarray(probs, dtype=np.float64).tolist(),
            "landmarks": np.asarray(points, dtype=np.float64).tolist(),
        }
        for k, (p, lm) in enumerate(zip(probs, points)):
            if p < 0.9:
                continue
            if file.startswith("fixtures/"):
                continue
            face_id = f"{os.path.splitext(file)[0]}_{k}"
            c112 = crop(img, lm, ARCFACE_112, 112)
            c64 = crop(img, lm, dlib_template(64), 64)
            c32 = crop(img, lm, dlib_template(32), 32)
            for c, s in [(c112, 112), (c64, 64), (c32, 32)]:
                Image.fromarray(c).save(os.path.join(TEACH_OUT, "crops", f"{face_id}_{s}.png"))
            x = ((c112.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
            emb = fr.run(None, {"input": np.ascontiguousarray(x)})[0][0]
            a = ((c64.astype(np.float32) - AG_MEAN) / np.float32(256.0)).transpose(2, 0, 1)[None]
            g = ((c32.astype(np.float32) - AG_MEAN) / np.float32(256.0)).transpose(2, 0, 1)[None]
            pa = age.run(None, {"images": np.ascontiguousarray(a)})[0][0]
            pg = gender.run(None, {"images": np.ascontiguousarray(g)})[0][0]
            faces.append(
                {
                    "face": face_id,
                    "image": file,
                    "index": k,
                    "landmarks": np.asarray(lm, dtype=np.float64).tolist(),
                    "embedding": [float(v) for v in emb],
                    "embedding_unit": [float(v) for v in (emb / np.linalg.norm(emb)).astype(np.float32)],
                    "age_probs": [float(v) for v in pa],
                    "expected_age": float(np.dot(pa.astype(np.float64), AGE_BINS)),
                    "gender_probs": pg.astype(np.float64).tolist(),
                }
            )
        print(f"{file}: {len(boxes)} faces, {sum(1 for f in faces if f['image'] == file)} crops")

    versions = {
        "torch": torch.__version__,
        "facenet_pytorch": "2.6.0",
        "onnxruntime": ort.__version__,
        "models": {f: sha256(os.path.join(MODELS, f)) for f in ["fr_feature.onnx", "age-v1.onnx", "gender-v1.onnx", "pnet.pt", "rnet.pt", "onet.pt"]},
    }
    with open(os.path.join(DETECT_OUT, "mtcnn_reference.json"), "w") as f:
        json.dump({"versions": versions, "nets": nets, "images": images}, f)
    with open(os.path.join(TEACH_OUT, "teachers_reference.json"), "w") as f:
        json.dump({"versions": versions, "age_bins": AGE_BINS.tolist(), "faces": faces}, f)
    print(f"{len(faces)} faces written")


if __name__ == "__main__":
    main()
