# `skinfood serve` in a container: the web API and the phone page, on CPU by default.
#
#   docker build -t skinfood-serve .
#   docker run --rm -p 8000:8000 -e SKINFOOD_TOKEN=change-me \
#       -v "$(skinfood home)/runs/NAME:/models:ro" skinfood-serve
#
# /models is a run folder (best.pt) or a model folder (`skinfood export --format hub`).
# GPU: --build-arg BASE=pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime, then `docker run --gpus all`
# (docs/serving.md, "Running in a container").
ARG BASE=python:3.12-slim
FROM ${BASE}

# Extras to install: `serve,export` also serves .onnx models.
ARG EXTRAS=serve
# Where CPU-only torch wheels come from (~200 MB instead of PyPI's ~2 GB CUDA build). A base
# image that already has torch (the CUDA ones) keeps its own: pip sees it installed.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m pip install --index-url "${TORCH_INDEX}" "torch>=2.6" "torchvision>=0.21"

# Only what `pip install .` needs; .dockerignore keeps the rest (.venv, .git, runs, photos) out
# of the build context too.
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY descriptions/ descriptions/
COPY skinfood_cli/ skinfood_cli/
RUN python -m pip install ".[${EXTRAS}]" \
    && rm -rf /src \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin skinfood \
    && mkdir -p /models

USER skinfood
WORKDIR /home/skinfood
EXPOSE 8000

# /healthz needs no token. python, not curl: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Any other --host needs a token: pass -e SKINFOOD_TOKEN=..., or read the one printed at start.
# Arguments after the image name replace CMD, e.g. `--model /models/best.onnx --max-batch-size 8`.
ENTRYPOINT ["skinfood", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model", "/models"]
