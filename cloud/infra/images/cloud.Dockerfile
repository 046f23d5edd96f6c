# loupe's cloud image: the loop's own steps as the Lambda handlers of the state machines
# (dist/cloud/serverless/handlers.<name>, one CMD per function) and as the model-build pipeline's
# processing steps (SageMaker Processing overrides the entrypoint with
# `node /var/task/dist/cloud/serverless/processing.js snapshot|evaluate`).
#
# Built by `cdk deploy` (`loupe aws deploy`) as a CDK Docker asset, from the repository root after
# `npm run build`; the asset holds only package.json, package-lock.json, .npmrc, dist/ (without
# tests, maps and the CDK app) and the shipped model (cloud/infra/images.ts lists it). Synth does
# not build it and needs no Docker engine.
FROM public.ecr.aws/lambda/nodejs:20

WORKDIR /var/task
COPY package.json package-lock.json .npmrc ./
# Production dependencies only: better-sqlite3, onnxruntime-node (CPU), sharp for linux-x64 glibc.
RUN npm ci --omit=dev --no-fund --no-audit && npm cache clean --force
# The pipeline's evaluate job quantizes the challenger (int8.enabled) with quantize.py: Python and
# onnxruntime in their own venv (no torch; the same pins as the trainer's), which loupe finds
# through LOUPE_QUANTIZER_VENV. The .loupe-ready marker is what loupe checks a venv by.
COPY cloud/quantize/requirements.txt cloud/quantize/quantize.py ./cloud/quantize/
RUN dnf install -y python3.11 python3.11-pip && dnf clean all \
 && python3.11 -m venv /opt/loupe-quantizer \
 && /opt/loupe-quantizer/bin/pip install --no-cache-dir -r cloud/quantize/requirements.txt \
 && /opt/loupe-quantizer/bin/python -c 'import onnx, onnxruntime, numpy' \
 && touch /opt/loupe-quantizer/.loupe-ready
ENV LOUPE_QUANTIZER_VENV=/opt/loupe-quantizer
COPY dist ./dist
COPY models/metal-tags/model.onnx models/metal-tags/model.pt models/metal-tags/card.json models/metal-tags/train-metrics.json ./models/metal-tags/

CMD ["dist/cloud/serverless/handlers.ingest"]
