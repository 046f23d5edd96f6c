/**
 * Ingest of device uploads: `ingestIncoming({ s3, bucket, store, statePath, prefix?, lookbackSeconds? })`
 * records each new `incoming/…/<frame>.jpg` + `<frame>.json` as a PENDING label record with the
 * device's detections as pre-annotations; idempotent (see ingest.ts).
 */
export { ingestIncoming, readIngestState, type IngestOptions, type IngestResult } from './ingest.js';
export { detectionsToGt } from './sidecar.js';
