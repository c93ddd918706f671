# One image for every fleet process (deploy, listener, worker, trainer, beat, flower); compose picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app

# The chain toolchain pinned by package-lock.json (anvil for the `chain` service).
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# torch first and pinned (point PIP_INDEX_URL at a CPU-only index to avoid the large CUDA build).
ARG PIP_INDEX_URL
RUN pip install "torch==2.13.0"
COPY pyproject.toml README.md contract_addresses.json ./
COPY agentfleet ./agentfleet
COPY chain_listener ./chain_listener
COPY workers ./workers
COPY trainer ./trainer
COPY shell ./shell
COPY contracts ./contracts
RUN pip install .

RUN useradd --create-home fleet && mkdir -p /app/models /app/deployment && chown -R fleet /app/models /app/deployment
USER fleet
