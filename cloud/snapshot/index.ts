/**
 * Data set snapshots as of T (approved labels only, one record per image content, deterministic
 * splits, content-derived id, YOLO folder + snapshot.json): `createSnapshot(opts)`, `snapshotId(classes, records)`,
 * `readSnapshotManifest(dir)`. See snapshot.ts.
 */
export * from './snapshot.js';
