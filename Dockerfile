# The project's own image: both services, the relay and the tools. One image, several commands.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY schemas ./schemas
COPY services ./services
COPY deploy ./deploy
ENV PYTHONPATH=/app REGISTRY_HOST=0.0.0.0 PROJECTIONS_HOST=0.0.0.0
RUN useradd --system --uid 10001 coordreg
USER coordreg
EXPOSE 8000 8001
CMD ["python", "-m", "services.registry.entrypoints.main"]
