import { AthenaClient, GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import {
  CreateFeatureGroupCommand,
  DescribeFeatureGroupCommand,
  ResourceNotFound,
  SageMakerClient,
  type CreateFeatureGroupCommandInput,
  type FeatureDefinition,
} from '@aws-sdk/client-sagemaker';
import { PutRecordCommand, SageMakerFeatureStoreRuntimeClient, type FeatureValue } from '@aws-sdk/client-sagemaker-featurestore-runtime';
import { LoupeError } from '../../lib/errors.js';
import { parsePyLiteral } from '../../lib/pyliteral.js';
import { pyAnnotations } from '../../contracts/labels-csv.js';
import type { LabelStoreMirrorTarget, LatestQuery, StoredLabelRecord } from './types.js';
import type { LabelRecord, LabelStatus } from '../../contracts/label-record.js';
import type { GtBox } from '../../contracts/box.js';
import { validateRecord } from '../../contracts/label-record.js';

/**
 * The label store on SageMaker Feature Store (the reference solution's choice), offline store
 * only: records go in with PutRecord (featurestore-runtime); reads run SQL on the offline
 * store's Glue table through Athena.
 *
 * Why Athena rather than listing the offline store's parquet files: Feature Store registers
 * the offline store as a Glue table itself, so the point-in-time rule ("latest record per image
 * with event_time <= T", ties broken by api_invocation_time, delete markers honoured) runs as
 * one window query where the data lives, needs no parquet reader here, and does not download
 * every file of the history on each read. The cost: the offline store lags PutRecord by up to
 * ~15 minutes (Feature Store's documented replication delay), so a read right after an append
 * may not see it; the embedded SQLite store has no such lag.
 *
 * Feature group: record identifier `source_ref`, event time `event_time` (Fractional, epoch
 * seconds, as in the reference), `annotations` as the Python-literal string the reference
 * wrote, `meta` as JSON. `capture_time` is left out of a record when unknown.
 */

export const FEATURE_DEFINITIONS: FeatureDefinition[] = [
  { FeatureName: 'source_ref', FeatureType: 'String' },
  { FeatureName: 'image_width', FeatureType: 'Integral' },
  { FeatureName: 'image_height', FeatureType: 'Integral' },
  { FeatureName: 'image_depth', FeatureType: 'Integral' },
  { FeatureName: 'annotations', FeatureType: 'String' },
  { FeatureName: 'event_time', FeatureType: 'Fractional' },
  { FeatureName: 'labeling_job', FeatureType: 'String' },
  { FeatureName: 'status', FeatureType: 'String' },
  { FeatureName: 'device', FeatureType: 'String' },
  { FeatureName: 'capture_time', FeatureType: 'Fractional' },
  { FeatureName: 'model_version', FeatureType: 'String' },
  { FeatureName: 'meta', FeatureType: 'String' },
];

export interface FeatureStoreOptions {
  featureGroupName: string;
  /** Where the offline store writes (s3://bucket/prefix). Needed only to create the group. */
  offlineStoreS3Uri?: string;
  /** Role Feature Store assumes to write the offline store. Needed only to create the group. */
  roleArn?: string;
  /** Athena: where query results go (s3://...), and the workgroup. */
  athenaOutputS3Uri: string;
  athenaWorkGroup?: string;
  sagemaker: SageMakerClient;
  runtime: SageMakerFeatureStoreRuntimeClient;
  athena: AthenaClient;
  /** Poll interval for feature group creation and Athena queries (ms). */
  pollMs?: number;
  /** Give up waiting after this long (ms). */
  timeoutMs?: number;
}

/** The CreateFeatureGroup request loupe sends (exported so docs and tests show the exact shape). */
export function featureGroupRequest(
  opts: Pick<FeatureStoreOptions, 'featureGroupName' | 'offlineStoreS3Uri' | 'roleArn'>,
): CreateFeatureGroupCommandInput {
  if (!opts.offlineStoreS3Uri || !opts.roleArn) {
    throw new LoupeError('FEATURESTORE_CONFIG', 'creating a feature group needs offlineStoreS3Uri and roleArn', {
      input: opts.featureGroupName,
    });
  }
  return {
    FeatureGroupName: opts.featureGroupName,
    RecordIdentifierFeatureName: 'source_ref',
    EventTimeFeatureName: 'event_time',
    FeatureDefinitions: FEATURE_DEFINITIONS,
    OnlineStoreConfig: { EnableOnlineStore: false },
    OfflineStoreConfig: { S3StorageConfig: { S3Uri: opts.offlineStoreS3Uri }, DisableGlueTableCreation: false },
    RoleArn: opts.roleArn,
    Description: 'loupe label records (reference feature-store layout + device, capture time, model version)',
  };
}

/** PutRecord's Record for one label record. */
export function toFeatureRecord(r: LabelRecord): FeatureValue[] {
  const out: FeatureValue[] = [
    { FeatureName: 'source_ref', ValueAsString: r.source_ref },
    { FeatureName: 'image_width', ValueAsString: String(r.image_width) },
    { FeatureName: 'image_height', ValueAsString: String(r.image_height) },
    { FeatureName: 'image_depth', ValueAsString: String(r.image_depth) },
    { FeatureName: 'annotations', ValueAsString: pyAnnotations(r.annotations) },
    { FeatureName: 'event_time', ValueAsString: String(r.event_time) },
    { FeatureName: 'labeling_job', ValueAsString: r.labeling_job },
    { FeatureName: 'status', ValueAsString: r.status },
    { FeatureName: 'device', ValueAsString: r.device },
  ];
  if (r.capture_time !== null) out.push({ FeatureName: 'capture_time', ValueAsString: String(r.capture_time) });
  out.push({ FeatureName: 'model_version', ValueAsString: r.model_version });
  out.push({ FeatureName: 'meta', ValueAsString: JSON.stringify(r.meta) });
  return out;
}

const COLUMNS = FEATURE_DEFINITIONS.map((f) => f.FeatureName!);

function quoteIdent(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** Build the point-in-time query; values travel as Athena ExecutionParameters, never spliced in. */
export function latestQuery(
  table: { database: string; table: string; catalog?: string },
  q: LatestQuery,
): { sql: string; params: string[] } {
  const from = `${table.catalog ? quoteIdent(table.catalog) + '.' : ''}${quoteIdent(table.database)}.${quoteIdent(table.table)}`;
  const params: string[] = [];
  const inner: string[] = [];
  if (q.asOf !== undefined) {
    inner.push('event_time <= ?');
    params.push(String(q.asOf));
  }
  if (q.sourceRefs) {
    inner.push(`source_ref IN (${q.sourceRefs.map(() => '?').join(', ')})`);
    for (const r of q.sourceRefs) params.push(`'${r.replace(/'/g, "''")}'`);
  }
  const statuses = q.status === undefined ? [] : Array.isArray(q.status) ? q.status : [q.status];
  const outer = ['rn = 1', 'NOT is_deleted'];
  if (statuses.length) {
    outer.push(`status IN (${statuses.map(() => '?').join(', ')})`);
    for (const s of statuses) params.push(`'${s}'`);
  }
  const sql =
    `SELECT ${COLUMNS.join(', ')}, api_invocation_time FROM (` +
    `SELECT *, row_number() OVER (PARTITION BY source_ref ORDER BY event_time DESC, api_invocation_time DESC, write_time DESC) AS rn ` +
    `FROM ${from}${inner.length ? ' WHERE ' + inner.join(' AND ') : ''}` +
    `) WHERE ${outer.join(' AND ')} ORDER BY source_ref`;
  return { sql, params };
}

export class FeatureStoreLabelStore implements LabelStoreMirrorTarget {
  readonly kind = 'featurestore';
  private table?: { database: string; table: string; catalog?: string };

  constructor(private readonly opts: FeatureStoreOptions) {}

  /** Create the feature group if it does not exist, and wait until it is Created. */
  async ensureFeatureGroup(): Promise<void> {
    const name = this.opts.featureGroupName;
    let status = await this.describeStatus();
    if (status === undefined) {
      await this.opts.sagemaker.send(new CreateFeatureGroupCommand(featureGroupRequest(this.opts)));
      status = 'Creating';
    }
    const deadline = Date.now() + (this.opts.timeoutMs ?? 600_000);
    while (status === 'Creating') {
      if (Date.now() > deadline) throw new LoupeError('FEATURESTORE_TIMEOUT', 'feature group still Creating', { input: name });
      await sleep(this.opts.pollMs ?? 5000);
      status = await this.describeStatus();
    }
    if (status !== 'Created') throw new LoupeError('FEATURESTORE_STATUS', `feature group is ${status}`, { input: name });
  }

  private async describeStatus(): Promise<string | undefined> {
    try {
      const d = await this.opts.sagemaker.send(new DescribeFeatureGroupCommand({ FeatureGroupName: this.opts.featureGroupName }));
      const cat = d.OfflineStoreConfig?.DataCatalogConfig;
      if (cat?.Database && cat.TableName) this.table = { database: cat.Database, table: cat.TableName, catalog: cat.Catalog };
      return d.FeatureGroupStatus;
    } catch (e) {
      if (e instanceof ResourceNotFound || (e as { name?: string }).name === 'ResourceNotFound') return undefined;
      throw e;
    }
  }

  async append(records: LabelRecord[]): Promise<void> {
    const valid = records.map((r, i) => validateRecord(r, i));
    // PutRecord has no batch form; records go one by one, in order, so equal event times keep
    // their append order through api_invocation_time.
    for (const r of valid) {
      await this.opts.runtime.send(new PutRecordCommand({ FeatureGroupName: this.opts.featureGroupName, Record: toFeatureRecord(r) }));
    }
  }

  private async tableName(): Promise<{ database: string; table: string; catalog?: string }> {
    if (!this.table) {
      const status = await this.describeStatus();
      if (status === undefined)
        throw new LoupeError('FEATURESTORE_MISSING', 'feature group does not exist', { input: this.opts.featureGroupName });
      if (!this.table)
        throw new LoupeError('FEATURESTORE_NO_OFFLINE', 'feature group has no offline-store Glue table', {
          input: this.opts.featureGroupName,
        });
    }
    return this.table;
  }

  /** Run one Athena query and return its rows as objects keyed by column name. */
  async query(sql: string, params: string[]): Promise<Record<string, string | undefined>[]> {
    const table = await this.tableName();
    const started = await this.opts.athena.send(
      new StartQueryExecutionCommand({
        QueryString: sql,
        ...(params.length ? { ExecutionParameters: params } : {}),
        QueryExecutionContext: { Database: table.database, ...(table.catalog ? { Catalog: table.catalog } : {}) },
        ResultConfiguration: { OutputLocation: this.opts.athenaOutputS3Uri },
        ...(this.opts.athenaWorkGroup ? { WorkGroup: this.opts.athenaWorkGroup } : {}),
      }),
    );
    const id = started.QueryExecutionId!;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 600_000);
    for (;;) {
      const ex = await this.opts.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
      const state = ex.QueryExecution?.Status?.State;
      if (state === 'SUCCEEDED') break;
      if (state === 'FAILED' || state === 'CANCELLED') {
        throw new LoupeError(
          'FEATURESTORE_QUERY',
          `Athena query ${state}: ${ex.QueryExecution?.Status?.StateChangeReason ?? 'no reason given'}`,
          {
            input: this.opts.featureGroupName,
          },
        );
      }
      if (Date.now() > deadline)
        throw new LoupeError('FEATURESTORE_TIMEOUT', `Athena query ${id} still ${state}`, { input: this.opts.featureGroupName });
      await sleep(this.opts.pollMs ?? 1000);
    }
    const out: Record<string, string | undefined>[] = [];
    let header: string[] | undefined;
    let token: string | undefined;
    do {
      const page = await this.opts.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token, MaxResults: 1000 }));
      const rows = page.ResultSet?.Rows ?? [];
      let start = 0;
      if (!header) {
        header = (page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? []).map((c) => c.Name!);
        // Athena repeats the column names as the first row of the first page.
        if (rows[0] && rows[0].Data?.map((d) => d.VarCharValue).join('\u0000') === header.join('\u0000')) start = 1;
      }
      for (const row of rows.slice(start)) {
        const o: Record<string, string | undefined> = {};
        (row.Data ?? []).forEach((d, i) => (o[header![i]!] = d.VarCharValue));
        out.push(o);
      }
      token = page.NextToken;
    } while (token);
    return out;
  }

  private fromRow(o: Record<string, string | undefined>, i: number): StoredLabelRecord {
    const input = `feature group ${this.opts.featureGroupName}: ${o.source_ref}`;
    return {
      seq: o.api_invocation_time ? Date.parse(o.api_invocation_time) || i : i,
      source_ref: o.source_ref ?? '',
      image_width: Number(o.image_width),
      image_height: Number(o.image_height),
      image_depth: Number(o.image_depth),
      annotations: (parsePyLiteral(o.annotations || '[]', { input }) as unknown as GtBox[]) ?? [],
      event_time: Number(o.event_time),
      labeling_job: o.labeling_job ?? '',
      status: (o.status ?? 'PENDING') as LabelStatus,
      device: o.device ?? '',
      capture_time: o.capture_time ? Number(o.capture_time) : null,
      model_version: o.model_version ?? '',
      meta: o.meta ? (JSON.parse(o.meta) as Record<string, unknown>) : {},
    };
  }

  // Reads of the offline store, which lags PutRecord by up to ~15 minutes: named for that, so
  // they are not taken for LabelStore's read-after-write latest/history/known.

  /** Latest record per image as of T, from the offline store (lagging). */
  async latestOffline(q: LatestQuery = {}): Promise<StoredLabelRecord[]> {
    if (q.sourceRefs && q.sourceRefs.length === 0) return [];
    const { sql, params } = latestQuery(await this.tableName(), q);
    return (await this.query(sql, params)).map((o, i) => this.fromRow(o, i));
  }

  /** Every record of one image in the offline store (lagging), oldest first. */
  async historyOffline(sourceRef: string): Promise<StoredLabelRecord[]> {
    const t = await this.tableName();
    const from = `${t.catalog ? quoteIdent(t.catalog) + '.' : ''}${quoteIdent(t.database)}.${quoteIdent(t.table)}`;
    const sql = `SELECT ${COLUMNS.join(', ')}, api_invocation_time FROM ${from} WHERE source_ref = ? AND NOT is_deleted ORDER BY event_time, api_invocation_time`;
    return (await this.query(sql, [`'${sourceRef.replace(/'/g, "''")}'`])).map((o, i) => this.fromRow(o, i));
  }

  /** Which of these images the offline store (lagging) has records of. */
  async knownOffline(sourceRefs: string[]): Promise<Set<string>> {
    if (sourceRefs.length === 0) return new Set();
    const t = await this.tableName();
    const from = `${t.catalog ? quoteIdent(t.catalog) + '.' : ''}${quoteIdent(t.database)}.${quoteIdent(t.table)}`;
    const sql = `SELECT DISTINCT source_ref FROM ${from} WHERE source_ref IN (${sourceRefs.map(() => '?').join(', ')})`;
    const rows = await this.query(
      sql,
      sourceRefs.map((r) => `'${r.replace(/'/g, "''")}'`),
    );
    return new Set(rows.map((r) => r.source_ref!).filter(Boolean));
  }

  async close(): Promise<void> {}
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
