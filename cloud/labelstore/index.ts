/**
 * Label store: append-only label records with point-in-time reads.
 *
 *   openLabelStore(path)                    SQLite store (default; better-sqlite3, WAL)
 *   new FeatureStoreLabelStore(opts)        SageMaker Feature Store: a write mirror (PutRecord; lagging Athena reads *Offline)
 *   store.append(records)                   validate all, then append (all or nothing)
 *   store.latest({asOf, status, sourceRefs}) latest record per image with event_time <= asOf
 *   store.history(ref) / store.known(refs)
 *   importFeatureStoreCsv(store, csv)       the reference's labels.csv as history (idempotent)
 *   writeFeatureStoreCsv                    (the labels.csv format itself: contracts/labels-csv.ts)
 *   itemState(record)                       unlabelled | awaiting-verification | approved | rejected
 */
export * from './types.js';
export { validateRecord, makeRecord } from '../../contracts/label-record.js'; // the label record is a contract (contracts/label-record.ts)
export { SqliteLabelStore, openSqliteLabelStore, openSqliteLabelStore as openLabelStore } from './sqlite.js';
export {
  FeatureStoreLabelStore,
  featureGroupRequest,
  toFeatureRecord,
  latestQuery,
  FEATURE_DEFINITIONS,
  type FeatureStoreOptions,
} from './featurestore.js';
export { readFeatureStoreCsv, writeFeatureStoreCsv, importFeatureStoreCsv, pyAnnotations } from './csv.js';
export { itemState, type ItemState } from './state.js';
