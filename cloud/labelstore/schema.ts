import { addColumnIfMissing, type SqliteSchema } from '../../lib/migrate.js';

/**
 * The label database (`labels.db`), versioned (lib/migrate.ts): one file holds the label
 * store's append-only records, the labelling jobs that write to it in the same transactions,
 * and the Feature Store mirror's watermark, so one migration list covers all three (SQLite's
 * user_version is one number per file). Append a migration for every change; never edit one.
 */
const LABEL_RECORDS_V1 = `
CREATE TABLE IF NOT EXISTS label_records (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source_ref TEXT NOT NULL,
  image_width INTEGER NOT NULL,
  image_height INTEGER NOT NULL,
  image_depth INTEGER NOT NULL,
  annotations TEXT NOT NULL,
  event_time REAL NOT NULL,
  labeling_job TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('PENDING','APPROVED','REJECTED')),
  device TEXT NOT NULL,
  capture_time REAL,
  model_version TEXT NOT NULL,
  meta TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS label_records_ref_time ON label_records (source_ref, event_time, seq);
CREATE TRIGGER IF NOT EXISTS label_records_no_update BEFORE UPDATE ON label_records
  BEGIN SELECT RAISE(ABORT, 'label_records is append-only'); END;
CREATE TRIGGER IF NOT EXISTS label_records_no_delete BEFORE DELETE ON label_records
  BEGIN SELECT RAISE(ABORT, 'label_records is append-only'); END;
`;

/** Labelling jobs (cloud/labeling/jobs.ts). */
const LABELING_V1 = `
CREATE TABLE IF NOT EXISTS labeling_jobs (
  name TEXT PRIMARY KEY,
  created REAL NOT NULL,
  classes TEXT NOT NULL,
  instructions TEXT NOT NULL,
  workers_per_image INTEGER NOT NULL,
  cap INTEGER NOT NULL,
  backend TEXT NOT NULL,
  iou_threshold REAL NOT NULL,
  min_votes INTEGER
);
CREATE TABLE IF NOT EXISTS labeling_items (
  job TEXT NOT NULL REFERENCES labeling_jobs(name),
  source_ref TEXT NOT NULL,
  ord INTEGER NOT NULL,
  record TEXT NOT NULL,
  consolidated TEXT,
  verdict TEXT,
  reason TEXT,
  verifier TEXT,
  PRIMARY KEY (job, source_ref)
);
CREATE TABLE IF NOT EXISTS labeling_annotations (
  job TEXT NOT NULL,
  source_ref TEXT NOT NULL,
  worker TEXT NOT NULL,
  boxes TEXT NOT NULL,
  submitted REAL NOT NULL,
  PRIMARY KEY (job, source_ref, worker)
);
CREATE TABLE IF NOT EXISTS labeling_leases (
  job TEXT NOT NULL,
  source_ref TEXT NOT NULL,
  worker TEXT NOT NULL,
  expires REAL NOT NULL,
  PRIMARY KEY (job, source_ref, worker)
);
`;

/** Feature Store mirror watermark (cloud/loop/aws/featurestore-mirror.ts). */
const FEATURESTORE_MIRROR_V1 = `CREATE TABLE IF NOT EXISTS featurestore_mirror (feature_group TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL);
`;

/** Per-worker credentials (cloud/labeling/workers.ts). */
const LABELING_WORKERS_V2 = `
CREATE TABLE IF NOT EXISTS labeling_workers (
  id TEXT PRIMARY KEY,
  roles TEXT NOT NULL,
  token_sha256 TEXT NOT NULL UNIQUE,
  created REAL NOT NULL,
  revoked REAL,
  issued_by TEXT NOT NULL
);
`;

export const LABEL_STORE_SCHEMA: SqliteSchema = {
  name: 'label store',
  migrations: [
    {
      version: 1,
      description:
        'label_records (append-only), labeling_jobs/items/annotations/leases, featurestore_mirror (as release 53fa33d created them)',
      up: LABEL_RECORDS_V1 + LABELING_V1 + FEATURESTORE_MIRROR_V1,
    },
    {
      version: 2,
      description:
        'labelling: a box cap per job (labeling_jobs.max_boxes), per-worker credentials (labeling_workers, cloud/labeling/workers.ts)',
      up: (db) => {
        addColumnIfMissing(db, 'labeling_jobs', 'max_boxes', 'INTEGER');
        db.exec(LABELING_WORKERS_V2);
      },
    },
  ],
};
