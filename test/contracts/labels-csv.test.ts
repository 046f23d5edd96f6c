import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { datasetDir } from '../../lib/paths.js';
import { formatLabelsCsv, parseLabelsCsv, readLabelsCsv } from '../../contracts/labels-csv.js';
import { makeRecord } from '../../contracts/label-record.js';

const HEADER = 'source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status';

describe('contracts/labels-csv: one parser and one writer for labels.csv', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loupe-csv-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));
  const file = async (name: string, text: string) => {
    const p = join(dir, name);
    await writeFile(p, text);
    return p;
  };

  it('reads the reference file: 235 rows, Python-literal annotations, the row numbers', () => {
    const rows = parseLabelsCsv(join(datasetDir('metal-tags'), 'labels.csv'));
    expect(rows).toHaveLength(235);
    expect(rows[0]!.row).toBe(2);
    expect(rows[0]!.record.annotations[0]).toEqual({ class_id: 0, top: 123, left: 81, height: 97, width: 82 });
    expect(readLabelsCsv(join(datasetDir('metal-tags'), 'labels.csv')).map((r) => r.source_ref)).toEqual(
      rows.map((r) => r.record.source_ref),
    );
  });

  it('writes what it reads, with loupe’s extension columns', async () => {
    const records = [
      makeRecord({
        source_ref: 's3://b/a.jpg',
        image_width: 450,
        image_height: 300,
        annotations: [{ class_id: 0, left: 1.5, top: 2, width: 10, height: 20, confidence: 0.9 }],
        event_time: 12.5,
        labeling_job: 'labeling-job/x',
        status: 'APPROVED',
      }),
      makeRecord({
        source_ref: 's3://b/"q",.jpg',
        image_width: 450,
        image_height: 300,
        annotations: [],
        event_time: 13,
        labeling_job: '',
        status: 'PENDING',
        device: 'line-1',
        capture_time: 11.25,
        model_version: '1.0.0',
        meta: { reason: 'failed' },
      }),
    ];
    const p = await file('round.csv', formatLabelsCsv(records));
    expect(readLabelsCsv(p)).toEqual(records);
  });

  it('keeps statuses as written for importers; the label store reader refuses others, naming the row', async () => {
    const p = await file(
      'status.csv',
      `${HEADER}\ns3://b/a.jpg,450,300,3,[],12,job,APPROVED\ns3://b/b.jpg,450,300,3,[],12,job,PENDING_REVIEW\n`,
    );
    expect(parseLabelsCsv(p).map((r) => r.record.status)).toEqual(['APPROVED', 'PENDING_REVIEW']);
    expect(() => readLabelsCsv(p)).toThrow(
      `${p}: row 3 (s3://b/b.jpg): status must be one of PENDING/APPROVED/REJECTED, got "PENDING_REVIEW"`,
    );
  });

  it('refuses bad layout with the file, the row and the field named', async () => {
    const noCols = await file('cols.csv', 'source_ref,status\ns3://b/a.jpg,APPROVED\n');
    expect(() => parseLabelsCsv(noCols)).toThrow(
      /cols\.csv: header lacks column\(s\) image_width, image_height, image_depth, annotations, event_time, labeling_job/,
    );
    const badBox = await file(
      'box.csv',
      `${HEADER}\ns3://b/a.jpg,450,300,3,"[{'class_id': 0, 'left': 'x', 'top': 1, 'width': 2, 'height': 3}]",12,job,APPROVED\n`,
    );
    expect(() => parseLabelsCsv(badBox)).toThrow(`${badBox}: row 2 (s3://b/a.jpg): annotations box 1: left is "x", not a number`);
    const badNum = await file('num.csv', `${HEADER}\ns3://b/a.jpg,450,,3,[],12,job,APPROVED\n`);
    expect(() => parseLabelsCsv(badNum)).toThrow(`${badNum}: row 2 (s3://b/a.jpg): image_height must be a number, got ""`);
    expect(() => parseLabelsCsv(join(dir, 'absent.csv'))).toThrow(/absent\.csv: file not found/);
  });
});
