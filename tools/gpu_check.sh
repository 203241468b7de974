#!/usr/bin/env bash
# The CUDA check of facekit, for a machine with an NVIDIA GPU, CUDA and PyTorch but no package
# registries. Two halves:
#
#   bash tools/gpu_check.sh build        # here: the CUDA binaries and a synthetic RecordIO → gpu-kit/
#   bash tools/gpu_check.sh run [OUT]    # there, from the repository root with gpu-kit/ carried along
#
# `build` compiles, with `--features cuda` (Burn 0.21's CUDA backend builds offline):
#   - gpu-kit/bin/facekit   the program;
#   - gpu-kit/bin/parity    the CubeCL parity tests (tests/jit/parity.rs) on CUDA (tests/cuda.rs);
#   - gpu-kit/bin/bench     the distillation bench (benches/distill.rs), with its CUDA cases;
# strips and compresses them (xz), and writes gpu-kit/rec: a synthetic insightface RecordIO of GPU_CHECK_FACES (1024)
# augmented copies of the bundled real faces (examples/synthetic_recordio.rs).
#
# `run` writes OUT/gpu_check.json (OUT: the argument, else $OUT, else ./gpu-check-out) with:
#   - the GPU (nvidia-smi);
#   - CUDA vs NdArray parity on one student training step (forward, backward, AdamW), one LAFS
#     step, both teachers and MTCNN's three nets: every comparison's largest difference and bound;
#   - the student training step's images/s at batch 32 (criterion) against PyTorch on the same GPU
#     (tools/bench_distill_torch.py --device cuda: same network, loss, optimizer and batch);
#   - teacher caching images/s: `facekit teach --device cuda` over the RecordIO, and both
#     teachers' forward at batch 32 (criterion), with the same caching on this machine's CPU;
#   - a short CUDA quickstart: `facekit distill --device cuda` on the bundled photos (detect, cut,
#     teach, train, report), and one streamed epoch over the RecordIO;
# and OUT/logs/ with every step's output. Every step has a time limit and the whole run stays
# within GPU_CHECK_BUDGET seconds (480); a failing step is recorded and the others still run.
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU (a dry run of the script itself); PYTHON
# names the Python with PyTorch (default: python3).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
KIT="$ROOT/gpu-kit"

build() {
  set -e
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/facekit-target}"
  rm -rf "$KIT"
  mkdir -p "$KIT/bin"
  cargo build --release --locked --features cuda,facekit-cli/cuda -p facekit -p facekit-cli \
    --bin facekit --test cuda --bench distill --example synthetic_recordio \
    --message-format=json-render-diagnostics >"$KIT/build.jsonl"
  # The executables cargo reports, by target name.
  python3 - "$KIT" <<'EOF'
import json, shutil, subprocess, sys
kit = sys.argv[1]
names = {"facekit": "facekit", "cuda": "parity", "distill": "bench", "synthetic_recordio": "synthetic_recordio"}
found = {}
for line in open(f"{kit}/build.jsonl"):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in names:
        found[names[m["target"]["name"]]] = m["executable"]
missing = set(names.values()) - set(found)
if missing:
    sys.exit(f"cargo reported no executable for {sorted(missing)}")
for name, path in found.items():
    subprocess.run(["strip", "-o", f"{kit}/bin/{name}", path], check=True)
EOF
  rm -f "$KIT/build.jsonl"
  "$KIT/bin/synthetic_recordio" --n "${GPU_CHECK_FACES:-1024}" --out "$KIT/rec"
  rm "$KIT/bin/synthetic_recordio"
  # xz: about 6.5× smaller (the stripped binaries are ~200 MB); `run` unpacks them with Python's
  # lzma, so the GPU machine needs no xz.
  xz -T2 -9 "$KIT"/bin/*
  du -sh "$KIT"/bin/* "$KIT/rec" "$KIT"
  echo "carry gpu-kit/ (the run tool's carry: [\"gpu-kit\"]) and run: bash tools/gpu_check.sh run"
}

run() {
  local out="${1:-${OUT:-$ROOT/gpu-check-out}}"
  local device="${GPU_CHECK_DEVICE:-cuda}"
  local budget="${GPU_CHECK_BUDGET:-480}"
  local begin
  begin=$(date +%s)
  mkdir -p "$out/logs"
  out="$(cd "$out" && pwd)"
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  [ -f "$KIT/bin/facekit.xz" ] || { echo "gpu-kit/bin is missing: run 'bash tools/gpu_check.sh build' first" >&2; exit 1; }
  local bin="$WORK/bin" f
  mkdir -p "$bin"
  for f in "$KIT"/bin/*.xz; do
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$f" "$bin/$(basename "$f" .xz)" && chmod +x "$bin/$(basename "$f" .xz)" || exit 1
  done
  export FACEKIT_ROOT="$ROOT" FACEKIT_MODELS="$ROOT/models" CRITERION_HOME="$out/criterion"
  : >"$out/steps.tsv"
  # step NAME LIMIT CMD…: runs CMD within LIMIT seconds and what is left of the budget; stdout and
  # stderr go to OUT/logs/NAME.{out,err}, and NAME, exit status and seconds to OUT/steps.tsv.
  step() {
    local name="$1" limit="$2" left rc t0 ms
    shift 2
    left=$((budget - ($(date +%s) - begin)))
    [ "$left" -lt "$limit" ] && limit="$left"
    if [ "$limit" -le 5 ]; then
      printf '%s\t%s\t%s\n' "$name" "skipped" 0 >>"$out/steps.tsv"
      echo "== $name: skipped (budget spent)" >&2
      return
    fi
    echo "== $name (limit ${limit}s)" >&2
    t0=$(date +%s%N)
    timeout "$limit" "$@" >"$out/logs/$name.out" 2>"$out/logs/$name.err"
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '%s\t%s\t%d.%03d\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000)) >>"$out/steps.tsv"
    echo "   exit $rc" >&2
  }
  local fk=("$bin/facekit" --json --models "$ROOT/models")
  step gpu 20 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  step parity 200 env FACEKIT_PARITY_JSONL="$out/parity.jsonl" "$bin/parity" --test-threads=1 --nocapture
  step bench 100 "$bin/bench" --bench --warm-up-time 2 --measurement-time 5 "$( [ "$device" = cpu ] && echo ndarray || echo cuda)"
  step torch 60 "${PYTHON:-python3}" tools/bench_distill_torch.py --device "$device" --batch 32 --steps 20
  step teach 60 "${fk[@]}" teach --aligned "$KIT/rec" --out "$WORK/rec" --device "$device" --batch 64
  step teach_cpu 40 "${fk[@]}" teach --aligned "$KIT/rec" --out "$WORK/rec_cpu" --device cpu --batch 64 --max-new 256
  step quickstart 150 "${fk[@]}" distill --images data/faces --labels data/faces/manifest.csv \
    --out "$WORK/quickstart" --device "$device" --set train.epochs=10
  step stream_epoch 60 "${fk[@]}" distill --aligned "$KIT/rec" --out "$WORK/rec" --device "$device" \
    --set train.epochs=1
  python3 - "$out" "$device" "$(($(date +%s) - begin))" <<'EOF'
import json, pathlib, sys
out, device, seconds = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
logs = out / "logs"
steps = {}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, secs = line.split("\t")
    steps[name] = {"exit": rc if rc == "skipped" else int(rc), "seconds": round(float(secs or 0), 2)}
    err = (logs / f"{name}.err")
    if rc not in ("0", "skipped") and err.exists():
        steps[name]["error_tail"] = err.read_text(errors="replace")[-1500:]

def last_json(name):
    """The last line of a step's stdout that is a JSON object."""
    p = logs / f"{name}.out"
    for line in reversed(p.read_text(errors="replace").splitlines() if p.exists() else []):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None

def criterion(group, bench, batch=32):
    p = out / "criterion" / group / bench / "new" / "estimates.json"
    if not p.exists():
        return None
    ns = json.loads(p.read_text())["mean"]["point_estimate"]
    return {"seconds": ns * 1e-9, "images_per_s": batch / (ns * 1e-9)}

report = {"device": device, "seconds": seconds, "steps": steps}
gpu = logs / "gpu.out"
if gpu.exists():
    report["gpu"] = gpu.read_text().strip()
parity = out / "parity.jsonl"
rows = [json.loads(l) for l in parity.read_text().splitlines()] if parity.exists() else []
report["parity"] = {
    "passed": steps.get("parity", {}).get("exit") == 0,
    "comparisons": len(rows),
    "worst_ratio_to_bound": max((r["max_abs_diff"] / r["tol"] for r in rows), default=None),
    "rows": rows,
}
name = "ndarray" if device == "cpu" else "cuda"
ours = criterion("student_step", f"{name}_b32")
torch = last_json("torch")
step = {"facekit": ours, "pytorch": torch}
def get(j, key):
    return j.get(key) if isinstance(j, dict) else None

if ours and get(torch, "images_per_second"):
    step["ratio"] = ours["images_per_s"] / torch["images_per_second"]
report["student_step_b32"] = step
report["teachers_forward_b32"] = criterion("teachers", f"both_b32/{name}")
teach, teach_cpu = last_json("teach"), last_json("teach_cpu")
report["teacher_caching"] = {"device": teach, "cpu_256_faces": teach_cpu}
if get(teach, "images_per_s") and get(teach_cpu, "images_per_s"):
    report["teacher_caching"]["ratio_to_cpu"] = teach["images_per_s"] / teach_cpu["images_per_s"]
report["quickstart"] = last_json("quickstart")
report["stream_epoch"] = last_json("stream_epoch")
# One epoch over the RecordIO (its targets already cached by `teach`): faces over the step's wall
# time, which also holds the program's start, the model's initialisation and the cache check.
if get(report["stream_epoch"], "faces") and steps.get("stream_epoch", {}).get("exit") == 0:
    report["stream_epoch"]["images_per_s_wall"] = report["stream_epoch"]["faces"] / steps["stream_epoch"]["seconds"]
(out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps({k: report[k] for k in ("device", "seconds", "steps")}, indent=2))
EOF
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash tools/gpu_check.sh build | run [OUT]" >&2; exit 2 ;;
esac
