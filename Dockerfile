# The project's own image: both services, the relay, the officials' console and the tools. One
# image, several commands (the [project.scripts] of pyproject.toml: coordreg-registry,
# coordreg-relay, coordreg-console, ...).
# The base image by a clearly named argument: a release build pins it by digest,
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> .
# (docs/adr/0006-pinned-downloads.md; the default tag is for development builds).
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The locked dependencies first (hatchling, the build backend, among them): their layer is
# reused until requirements.lock changes.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
# Then the two distributions, installed (not editable): the contracts and the services.
# The development private key never enters the build context (.dockerignore), and the wheel
# excludes it too, so the image cannot carry it; the compose demo loader mounts it read-only.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-deps --no-build-isolation ./schemas . && rm -rf /src
WORKDIR /app
ENV REGISTRY_HOST=0.0.0.0 PROJECTIONS_HOST=0.0.0.0 CONSOLE_HOST=0.0.0.0
RUN useradd --system --uid 10001 coordreg
USER 10001
EXPOSE 8000 8001 8005
CMD ["coordreg-registry"]
