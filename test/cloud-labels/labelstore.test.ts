import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_HISTORY_UNTIL, imagesFirstLabelledAfter } from '../../cloud/loop/reference.js';
import { importFeatureStoreCsv, openLabelStore, writeFeatureStoreCsv, type SqliteLabelStore } from '../../cloud/labelstore/index.js';
import { readLabelsCsv } from '../../contracts/labels-csv.js';
import { makeRecord, type LabelRecord } from '../../contracts/label-record.js';
import { datasetDir } from '../../lib/paths.js';

const rec = (ref: string, t: number, status: LabelRecord['status'], job = '', boxes = 0): LabelRecord =>
  makeRecord({
    source_ref: ref,
    image_width: 100,
    image_height: 80,
    annotations: Array.from({ length: boxes }, (_, i) => ({ class_id: 0, left: 10 * i, top: 5, width: 8, height: 9 })),
    event_time: t,
    labeling_job: job,
    status,
  });

describe('SQLite label store', () => {
  let dir: string;
  let store: SqliteLabelStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lbl-'));
    store = openLabelStore(join(dir, 'labels.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers "latest record per image as of T" on a hand-worked history', async () => {
    // Hand-worked history (event times out of append order on purpose):
    //   A: 100 PENDING, 200 PENDING(job1, 1 box), 300 APPROVED(job1, 2 boxes), 300 REJECTED(job1)  <- same time: later append wins
    //   B: 250 REJECTED(job1), 150 APPROVED(job0)                                               <- appended late, earlier time
    //   C: 400 PENDING
    await store.append([rec('s3://b/A', 100, 'PENDING'), rec('s3://b/A', 200, 'PENDING', 'labeling-job/job1', 1)]);
    await store.append([rec('s3://b/B', 250, 'REJECTED', 'labeling-job/job1'), rec('s3://b/C', 400, 'PENDING')]);
    await store.append([
      rec('s3://b/A', 300, 'APPROVED', 'labeling-job/job1', 2),
      rec('s3://b/B', 150, 'APPROVED', 'labeling-job/job0', 3),
    ]);
    await store.append([rec('s3://b/A', 300, 'REJECTED', 'labeling-job/job1')]);

    const at = async (t?: number, status?: LabelRecord['status']) =>
      (await store.latest({ asOf: t, status })).map((r) => `${r.source_ref.slice(-1)}:${r.event_time}:${r.status}:${r.annotations.length}`);
    expect(await at(99)).toEqual([]);
    expect(await at(100)).toEqual(['A:100:PENDING:0']);
    expect(await at(149.9)).toEqual(['A:100:PENDING:0']);
    expect(await at(150)).toEqual(['A:100:PENDING:0', 'B:150:APPROVED:3']);
    expect(await at(249)).toEqual(['A:200:PENDING:1', 'B:150:APPROVED:3']);
    expect(await at(250)).toEqual(['A:200:PENDING:1', 'B:250:REJECTED:0']);
    expect(await at(300)).toEqual(['A:300:REJECTED:0', 'B:250:REJECTED:0']);
    expect(await at()).toEqual(['A:300:REJECTED:0', 'B:250:REJECTED:0', 'C:400:PENDING:0']);
    expect(await at(200, 'APPROVED')).toEqual(['B:150:APPROVED:3']);
    // Status filters apply to the latest record: B was approved at 150 but is rejected by 250.
    expect(await at(260, 'APPROVED')).toEqual([]);
    expect((await store.latest({ sourceRefs: ['s3://b/C', 's3://b/X'] })).map((r) => r.source_ref)).toEqual(['s3://b/C']);
    expect((await store.history('s3://b/A')).map((r) => `${r.event_time}:${r.status}`)).toEqual([
      '100:PENDING',
      '200:PENDING',
      '300:APPROVED',
      '300:REJECTED',
    ]);
    expect([...(await store.known(['s3://b/A', 's3://b/Z']))]).toEqual(['s3://b/A']);
  });

  it('is append-only and refuses a bad batch whole, naming the record and field', async () => {
    await store.append([rec('s3://b/A', 1, 'PENDING')]);
    expect(() => store.db.prepare("UPDATE label_records SET status = 'APPROVED'").run()).toThrow(/append-only/);
    expect(() => store.db.prepare('DELETE FROM label_records').run()).toThrow(/append-only/);
    const bad = { ...rec('s3://b/Bad', 2, 'APPROVED'), annotations: [{ class_id: 0, left: 95, top: 5, width: 20, height: 9 }] };
    await expect(store.append([rec('s3://b/Ok', 2, 'PENDING'), bad])).rejects.toThrow(
      /label record #1 \(s3:\/\/b\/Bad\): annotations.0: box .* outside the 100x80 image/,
    );
    await expect(store.append([{ ...rec('s3://b/X', 2, 'PENDING'), status: 'DONE' as never }])).rejects.toThrow(/status/);
    expect(store.count()).toBe(1);
  });

  it("imports the reference's labels.csv as history, idempotently", async () => {
    const csv = join(datasetDir('metal-tags'), 'labels.csv');
    const first = await importFeatureStoreCsv(store, csv);
    expect(first).toEqual({ read: 235, appended: 235, images: 235, later: 0, excluded: 0 });
    const again = await importFeatureStoreCsv(store, csv);
    expect(again.appended).toBe(0);
    expect(store.count()).toBe(235);
    const approved = await store.latest({ status: 'APPROVED' });
    expect(approved).toHaveLength(235);
    expect(approved.reduce((n, r) => n + r.annotations.length, 0)).toBe(482);
    const one = approved.find((r) => r.source_ref.endsWith('bad/image-2020-04-22-11-07-29-26-cropped-left-top.jpg'))!;
    expect(one.annotations[0]).toEqual({ class_id: 0, top: 123, left: 81, height: 97, width: 82 });
    expect(one.event_time).toBe(1657199072);
    expect(one.labeling_job).toBe('labeling-job/quality-inspection-labeling-job-11f5e1');
    // As of the first job's last label, only its images are there.
    const early = await store.latest({ asOf: 1657199072 });
    expect(early.length).toBeGreaterThan(0);
    expect(early.length).toBeLessThan(235);
    expect(early.every((r) => r.event_time <= 1657199072)).toBe(true);
  });

  it('imports the history as it stood at a point in time (until)', async () => {
    const csv = join(datasetDir('metal-tags'), 'labels.csv');
    // The first two labelling jobs (16eb08: 36 records, 9634f9: 8) ended before 2022-07-07T12:25Z.
    const r = await importFeatureStoreCsv(store, csv, { until: Date.parse('2022-07-07T12:25:00Z') / 1000 });
    expect(r).toEqual({ read: 235, appended: 44, images: 44, later: 191, excluded: 0 });
    const jobs = new Set((await store.latest()).map((x) => x.labeling_job.slice(-6)));
    expect([...jobs].sort()).toEqual(['16eb08', '9634f9']);
    // What a camera replaying the later history shows (the demo's camera folder): the other 191.
    const later = imagesFirstLabelledAfter(csv, datasetDir('metal-tags'), Date.parse(DEMO_HISTORY_UNTIL) / 1000);
    expect(later).toHaveLength(191);
    const held = new Set((await store.latest()).map((x) => x.source_ref.split('/').slice(-2).join('/')));
    expect(later.filter((f) => held.has(f.split('/').slice(-2).join('/')))).toEqual([]);
  });

  it('writes the reference layout back and reads it again unchanged', async () => {
    const records = [
      rec('s3://b/A', 1.5, 'APPROVED', 'labeling-job/x', 2),
      { ...rec('s3://b/"q",', 2, 'PENDING'), device: 'thing-1', capture_time: 1.25, model_version: '1.0.0', meta: { reason: 'fail' } },
    ];
    const p = join(dir, 'out.csv');
    await writeFeatureStoreCsv(p, records);
    expect(readLabelsCsv(p)).toEqual(records);
  });

  it('refuses a broken CSV with the row named', () => {
    const p = join(dir, 'bad.csv');
    writeFileSync(
      p,
      "source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status\ns3://b/a.jpg,450,300,3,\"[{'class_id': 0, 'top': 1, 'left': 1, 'height': 5, 'width': 5}]\",12,job,APPROVED\ns3://b/b.jpg,450,x,3,[],12,job,APPROVED\n",
    );
    expect(() => readLabelsCsv(p)).toThrow(/bad\.csv: row 3 \(s3:\/\/b\/b\.jpg\): image_height must be a number/);
  });
});
