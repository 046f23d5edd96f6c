import { AthenaClient, GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { CreateFeatureGroupCommand, DescribeFeatureGroupCommand, ResourceNotFound, SageMakerClient } from '@aws-sdk/client-sagemaker';
import { PutRecordCommand, SageMakerFeatureStoreRuntimeClient } from '@aws-sdk/client-sagemaker-featurestore-runtime';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { FEATURE_DEFINITIONS, FeatureStoreLabelStore } from '../../cloud/labelstore/index.js';
import { makeRecord } from '../../contracts/label-record.js';
import { EXPECTED_FEATURE_DEFINITIONS } from '../helpers/aws-shapes.js';

const sm = mockClient(SageMakerClient);
const rt = mockClient(SageMakerFeatureStoreRuntimeClient);
const athena = mockClient(AthenaClient);

const make = () =>
  new FeatureStoreLabelStore({
    featureGroupName: 'loupe-labels',
    offlineStoreS3Uri: 's3://loupe-offline/labels',
    roleArn: 'arn:aws:iam::111122223333:role/loupe-featurestore',
    athenaOutputS3Uri: 's3://loupe-athena/results/',
    athenaWorkGroup: 'loupe',
    sagemaker: new SageMakerClient({ region: 'us-east-1' }),
    runtime: new SageMakerFeatureStoreRuntimeClient({ region: 'us-east-1' }),
    athena: new AthenaClient({ region: 'us-east-1' }),
    pollMs: 0,
  });

const described = {
  FeatureGroupStatus: 'Created',
  OfflineStoreConfig: {
    S3StorageConfig: { S3Uri: 's3://loupe-offline/labels' },
    DataCatalogConfig: { Catalog: 'AwsDataCatalog', Database: 'sagemaker_featurestore', TableName: 'loupe_labels_1700000000' },
  },
} as const;

describe('SageMaker Feature Store label store (control plane and runtime mocked; exact request shapes)', () => {
  afterEach(() => {
    sm.reset();
    rt.reset();
    athena.reset();
  });

  it('creates the feature group when missing and waits for it', async () => {
    sm.on(DescribeFeatureGroupCommand)
      .rejectsOnce(new ResourceNotFound({ message: 'not found', $metadata: {} }))
      .resolvesOnce({ FeatureGroupStatus: 'Creating' })
      .resolves(described);
    sm.on(CreateFeatureGroupCommand).resolves({ FeatureGroupArn: 'arn:aws:sagemaker:us-east-1:111122223333:feature-group/loupe-labels' });
    await make().ensureFeatureGroup();
    expect(sm.commandCalls(CreateFeatureGroupCommand).map((c) => c.args[0].input)).toEqual([
      {
        FeatureGroupName: 'loupe-labels',
        RecordIdentifierFeatureName: 'source_ref',
        EventTimeFeatureName: 'event_time',
        FeatureDefinitions: EXPECTED_FEATURE_DEFINITIONS,
        OnlineStoreConfig: { EnableOnlineStore: false },
        OfflineStoreConfig: { S3StorageConfig: { S3Uri: 's3://loupe-offline/labels' }, DisableGlueTableCreation: false },
        RoleArn: 'arn:aws:iam::111122223333:role/loupe-featurestore',
        Description: 'loupe label records (reference feature-store layout + device, capture time, model version)',
      },
    ]);
    expect(sm.commandCalls(DescribeFeatureGroupCommand)).toHaveLength(3);
    expect(FEATURE_DEFINITIONS).toHaveLength(12);
  });

  it('puts records with PutRecord in the reference layout (annotations as the Python literal)', async () => {
    rt.on(PutRecordCommand).resolves({});
    const store = make();
    await store.append([
      makeRecord({
        source_ref: 's3://b/a.jpg',
        image_width: 450,
        image_height: 300,
        annotations: [{ class_id: 0, left: 81, top: 123, width: 82, height: 97 }],
        event_time: 1657199072.5,
        labeling_job: 'labeling-job/j1',
        status: 'APPROVED',
      }),
      makeRecord({
        source_ref: 's3://b/b.jpg',
        image_width: 450,
        image_height: 300,
        annotations: [],
        event_time: 1700000000,
        labeling_job: '',
        status: 'PENDING',
        device: 'line-1',
        capture_time: 1699999999.25,
        model_version: '1.0.0',
        meta: { camera: 'cam0' },
      }),
    ]);
    expect(rt.commandCalls(PutRecordCommand).map((c) => c.args[0].input)).toEqual([
      {
        FeatureGroupName: 'loupe-labels',
        Record: [
          { FeatureName: 'source_ref', ValueAsString: 's3://b/a.jpg' },
          { FeatureName: 'image_width', ValueAsString: '450' },
          { FeatureName: 'image_height', ValueAsString: '300' },
          { FeatureName: 'image_depth', ValueAsString: '3' },
          { FeatureName: 'annotations', ValueAsString: "[{'class_id': 0, 'left': 81, 'top': 123, 'width': 82, 'height': 97}]" },
          { FeatureName: 'event_time', ValueAsString: '1657199072.5' },
          { FeatureName: 'labeling_job', ValueAsString: 'labeling-job/j1' },
          { FeatureName: 'status', ValueAsString: 'APPROVED' },
          { FeatureName: 'device', ValueAsString: '' },
          { FeatureName: 'model_version', ValueAsString: '' },
          { FeatureName: 'meta', ValueAsString: '{}' },
        ],
      },
      {
        FeatureGroupName: 'loupe-labels',
        Record: [
          { FeatureName: 'source_ref', ValueAsString: 's3://b/b.jpg' },
          { FeatureName: 'image_width', ValueAsString: '450' },
          { FeatureName: 'image_height', ValueAsString: '300' },
          { FeatureName: 'image_depth', ValueAsString: '3' },
          { FeatureName: 'annotations', ValueAsString: '[]' },
          { FeatureName: 'event_time', ValueAsString: '1700000000' },
          { FeatureName: 'labeling_job', ValueAsString: '' },
          { FeatureName: 'status', ValueAsString: 'PENDING' },
          { FeatureName: 'device', ValueAsString: 'line-1' },
          { FeatureName: 'capture_time', ValueAsString: '1699999999.25' },
          { FeatureName: 'model_version', ValueAsString: '1.0.0' },
          { FeatureName: 'meta', ValueAsString: '{"camera":"cam0"}' },
        ],
      },
    ]);
    // a bad record is refused before anything is sent
    rt.reset();
    await expect(
      store.append([
        makeRecord({
          source_ref: 's3://b/c.jpg',
          image_width: 0,
          image_height: 300,
          annotations: [],
          event_time: 1,
          labeling_job: '',
          status: 'PENDING',
        }),
      ]),
    ).rejects.toThrow(/c\.jpg\): image_width/);
    expect(rt.commandCalls(PutRecordCommand)).toHaveLength(0);
  });

  it('reads "latest per image as of T" with one Athena window query, paginated results parsed back', async () => {
    sm.on(DescribeFeatureGroupCommand).resolves(described);
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce({ QueryExecution: { Status: { State: 'RUNNING' } } })
      .resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' } } });
    const cols = [
      'source_ref',
      'image_width',
      'image_height',
      'image_depth',
      'annotations',
      'event_time',
      'labeling_job',
      'status',
      'device',
      'capture_time',
      'model_version',
      'meta',
      'api_invocation_time',
    ];
    const row = (vals: (string | undefined)[]) => ({ Data: vals.map((v) => (v === undefined ? {} : { VarCharValue: v })) });
    athena
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q-1', NextToken: undefined })
      .resolves({
        ResultSet: {
          ResultSetMetadata: { ColumnInfo: cols.map((Name) => ({ Name, Type: 'varchar' })) },
          Rows: [
            row(cols),
            row([
              's3://b/a.jpg',
              '450',
              '300',
              '3',
              "[{'class_id': 0, 'left': 81, 'top': 123, 'width': 82, 'height': 97}]",
              '1657199072.5',
              'labeling-job/j1',
              'APPROVED',
              '',
              undefined,
              '',
              '{}',
              '2024-01-01 00:00:00.000',
            ]),
          ],
        },
        NextToken: 'page-2',
      })
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q-1', NextToken: 'page-2' })
      .resolves({
        ResultSet: {
          Rows: [
            row([
              "s3://b/it's.jpg",
              '450',
              '300',
              '3',
              '[]',
              '1657199000',
              'labeling-job/j0',
              'APPROVED',
              'line-1',
              '1657198000',
              '0.9',
              '{"camera":"c"}',
              '2024-01-01 00:00:01.000',
            ]),
          ],
        },
      });

    const out = await make().latestOffline({ asOf: 1657199999, status: 'APPROVED', sourceRefs: ['s3://b/a.jpg', "s3://b/it's.jpg"] });
    const start = athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input;
    expect(start).toEqual({
      QueryString:
        'SELECT source_ref, image_width, image_height, image_depth, annotations, event_time, labeling_job, status, device, capture_time, model_version, meta, api_invocation_time FROM (' +
        'SELECT *, row_number() OVER (PARTITION BY source_ref ORDER BY event_time DESC, api_invocation_time DESC, write_time DESC) AS rn ' +
        'FROM "AwsDataCatalog"."sagemaker_featurestore"."loupe_labels_1700000000" WHERE event_time <= ? AND source_ref IN (?, ?)' +
        ') WHERE rn = 1 AND NOT is_deleted AND status IN (?) ORDER BY source_ref',
      ExecutionParameters: ['1657199999', "'s3://b/a.jpg'", "'s3://b/it''s.jpg'", "'APPROVED'"],
      QueryExecutionContext: { Database: 'sagemaker_featurestore', Catalog: 'AwsDataCatalog' },
      ResultConfiguration: { OutputLocation: 's3://loupe-athena/results/' },
      WorkGroup: 'loupe',
    });
    expect(athena.commandCalls(GetQueryExecutionCommand)).toHaveLength(2);
    expect(athena.commandCalls(GetQueryResultsCommand).map((c) => c.args[0].input)).toEqual([
      { QueryExecutionId: 'q-1', NextToken: undefined, MaxResults: 1000 },
      { QueryExecutionId: 'q-1', NextToken: 'page-2', MaxResults: 1000 },
    ]);
    expect(out.map(({ seq: _s, ...r }) => r)).toEqual([
      {
        source_ref: 's3://b/a.jpg',
        image_width: 450,
        image_height: 300,
        image_depth: 3,
        annotations: [{ class_id: 0, left: 81, top: 123, width: 82, height: 97 }],
        event_time: 1657199072.5,
        labeling_job: 'labeling-job/j1',
        status: 'APPROVED',
        device: '',
        capture_time: null,
        model_version: '',
        meta: {},
      },
      {
        source_ref: "s3://b/it's.jpg",
        image_width: 450,
        image_height: 300,
        image_depth: 3,
        annotations: [],
        event_time: 1657199000,
        labeling_job: 'labeling-job/j0',
        status: 'APPROVED',
        device: 'line-1',
        capture_time: 1657198000,
        model_version: '0.9',
        meta: { camera: 'c' },
      },
    ]);
  });

  it('reports a failed Athena query with its reason', async () => {
    sm.on(DescribeFeatureGroupCommand).resolves(described);
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-2' });
    athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { Status: { State: 'FAILED', StateChangeReason: 'TABLE_NOT_FOUND' } } });
    await expect(make().latestOffline()).rejects.toThrow(/loupe-labels: Athena query FAILED: TABLE_NOT_FOUND/);
  });
});
