# aclq worker / client image. EXTRA picks the engine: worker (CPU), worker-cann (Ascend NPU
# through onnxruntime-cann) or worker-cuda (onnxruntime-gpu). For the pyACL backend, mount the
# CANN toolkit and set ACLQ_BACKEND=pyacl.
FROM python:3.11-slim

ARG EXTRA=worker
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# The graph cache's directory exists in the image, owned by aclq, so that a volume mounted on it
# (docker-compose.yml) starts with that owner.
RUN useradd --create-home --uid 10001 aclq \
    && mkdir -p /home/aclq/.cache/aclq/graphs && chown -R aclq:aclq /home/aclq/.cache
WORKDIR /app

# Dependencies in their own layer: rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN mkdir acl_core producer worker && touch acl_core/__init__.py producer/__init__.py worker/__init__.py \
    && pip install ".[${EXTRA}]" && pip uninstall -y aclq

COPY acl_core ./acl_core
COPY producer ./producer
COPY worker ./worker
RUN pip install --no-deps . && rm -rf /app/acl_core /app/producer /app/worker

USER aclq
ENTRYPOINT ["aclq"]
CMD ["worker", "--device", "0"]
