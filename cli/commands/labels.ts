import { S3Client } from '@aws-sdk/client-s3';
import { Option, type Command } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { datasetDir, defaultHome } from '../../lib/paths.js';
import { ingestIncoming } from '../../cloud/ingest/index.js';
import { ImageSource, metalTagsMapping, type RefMapping } from '../../cloud/labeling/images.js';
import { DEFAULT_MAX_BOXES, Labeling, type Job } from '../../cloud/labeling/jobs.js';
import { startLabelServer } from '../../cloud/labeling/server.js';
import { parseRoles, type Worker } from '../../cloud/labeling/workers.js';
import { runSimulatedVerifier, runSimulatedWorkforce, truthFromStore } from '../../cloud/labeling/workforce.js';
import { readImageIds } from '../../cloud/dataset/id-list.js';
// The label store's modules, not its index: the index also brings the Feature Store adapter (the
// SageMaker and Athena clients), a second of start-up that no `labels` command needs.
import { openSqliteLabelStore as openLabelStore, type SqliteLabelStore } from '../../cloud/labelstore/sqlite.js';
import { importFeatureStoreCsv, writeFeatureStoreCsv } from '../../cloud/labelstore/csv.js';
import { itemState } from '../../cloud/labelstore/state.js';
import type { LabelStatus } from '../../contracts/label-record.js';
import { importDataset } from '../../cloud/dataset/import.js';
import { importLabelledImages, labelStudioTasksFromRecords } from '../../cloud/labelstore/labelled-import.js';
import { writeFileAtomic } from '../../lib/fsutil.js';

/**
 * `loupe labels …`: the label store (import, export, list, history, stats), ingest of device
 * uploads, labelling jobs, the labelling web UI, and the simulated workforce. State lives under
 * --home (default $LOUPE_HOME or ./.loupe): labels.db, ingest-state.json.
 */
const out = (line: string) => process.stdout.write(line + '\n');

export interface HomeOptions {
  home?: string;
  store?: string;
}

export function homeDir(o: HomeOptions): string {
  return o.home ? resolve(o.home) : defaultHome();
}

export function openStoreFrom(o: HomeOptions): SqliteLabelStore {
  return openLabelStore(o.store ? resolve(o.store) : join(homeDir(o), 'labels.db'));
}

/** Run `f` with the label store of `o`, closed afterwards (also when `f` throws). */
async function withStore<T>(o: HomeOptions, f: (store: SqliteLabelStore) => Promise<T>): Promise<T> {
  const store = openStoreFrom(o);
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/** Epoch seconds from `--as-of` (epoch seconds or an ISO-8601 time). */
export function parseTime(v: string | undefined, flag = '--as-of'): number | undefined {
  if (v === undefined) return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new LoupeError('BAD_OPTION', `${JSON.stringify(v)} is neither epoch seconds nor an ISO-8601 time`, { input: flag });
  return t / 1000;
}

function intOption(v: string, flag: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new LoupeError('BAD_OPTION', `must be an integer >= ${min}, got ${JSON.stringify(v)}`, { input: flag });
  return n;
}

function rateOption(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new LoupeError('BAD_OPTION', `must be a number in [0, 1], got ${JSON.stringify(v)}`, { input: flag });
  return n;
}

export interface S3Options {
  endpoint?: string;
  region?: string;
  bucket?: string;
}

/**
 * An S3 client: `--endpoint` points it at the embedded store (path-style). Credentials come from
 * the default chain; for the embedded store, export its keys first
 * (`eval "$(loupe objectstore keys --dir DIR --env)"`).
 */
export function s3From(o: S3Options): S3Client | undefined {
  if (!o.endpoint && !o.bucket) return undefined;
  return new S3Client({
    region: o.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(o.endpoint ? { endpoint: o.endpoint, forcePathStyle: true } : {}),
  });
}

function mappingsFrom(maps: string[] | undefined): RefMapping[] {
  const out: RefMapping[] = (maps ?? []).map((m) => {
    const i = m.lastIndexOf('=');
    if (i <= 0) throw new LoupeError('BAD_OPTION', `expected PREFIX=DIR, got ${JSON.stringify(m)}`, { input: '--map' });
    return { refPrefix: m.slice(0, i), dir: resolve(m.slice(i + 1)), idParts: 2 };
  });
  const metal = datasetDir('metal-tags');
  // The reference's own refs (s3://${bucket}/...) resolve to the shipped metal-tags folder.
  if (existsSync(metal)) out.push(metalTagsMapping(metal));
  return out;
}

export function imageSourceFrom(o: S3Options & { map?: string[] }): ImageSource {
  return new ImageSource({ s3: s3From(o), mappings: mappingsFrom(o.map) });
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function jobLine(j: Job): string {
  const c = j.counts;
  return `${j.name}  ${j.status.padEnd(9)} ${c.items} images, ${c.consolidated} labelled${c.consolidating ? ` (+${c.consolidating} consolidating)` : ''}, ${c.approved} approved, ${c.rejected} rejected  (${j.workersPerImage} worker(s)/image, classes ${j.classes.join(',')})`;
}

function withHome(cmd: Command): Command {
  return cmd
    .option('--home <dir>', 'state folder (default $LOUPE_HOME or ./.loupe)')
    .option('--store <file>', 'label store database (default <home>/labels.db)');
}

function withS3(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', 'S3 endpoint (the embedded object store); default AWS S3')
    .option('--region <region>', 'S3 region')
    .option('--bucket <name>', 'bucket');
}

function classList(v: string, flag: string): string[] {
  const names = v.split(',').map((x) => x.trim());
  if (names.some((n) => !n) || new Set(names).size !== names.length)
    throw new LoupeError('BAD_OPTION', `class names must be comma-separated, non-empty and distinct, got ${JSON.stringify(v)}`, {
      input: flag,
    });
  return names;
}

/** `labels import --yolo|--labelstudio`: read with the data set importers, append one record per image. */
async function importLabelledCli(
  o: HomeOptions & {
    yolo?: string;
    labelstudio?: string;
    images?: string;
    names?: string;
    refPrefix?: string;
    status: string;
    eventTime?: string;
    exclude?: string;
    json?: boolean;
  },
): Promise<void> {
  if (!o.refPrefix)
    throw new LoupeError(
      'BAD_OPTION',
      'where the images live is needed: source_ref = --ref-prefix + image id (e.g. s3://bucket/datasets/parts/)',
      { input: '--ref-prefix' },
    );
  if (o.status !== 'APPROVED' && o.status !== 'PENDING')
    throw new LoupeError('BAD_OPTION', `must be APPROVED or PENDING, got ${JSON.stringify(o.status)}`, { input: '--status' });
  const format = o.yolo ? 'yolo' : 'labelstudio';
  const from = resolve((o.yolo ?? o.labelstudio)!);
  const log = createLogger('labels', { stream: 'stderr' });
  const ds = await importDataset(format, from, { imagesDir: o.images, names: o.names ? classList(o.names, '--names') : undefined, log });
  const exclude = o.exclude ? new Set(readImageIds(resolve(o.exclude))) : undefined;
  const images = exclude ? ds.images.filter((i) => !exclude.has(i.id)) : ds.images;
  const eventTime = parseTime(o.eventTime, '--event-time') ?? Math.floor(statSync(from).mtimeMs) / 1000;
  const { refPrefix, status } = o; // as narrowed above, for the closure
  await withStore(o, async (store) => {
    const r = await importLabelledImages(store, images, { refPrefix, format, eventTime, status, source: from });
    const summary = { ...r, names: ds.names, unlabelled: ds.report.unlabelled.length, excluded: ds.images.length - images.length };
    out(
      o.json
        ? JSON.stringify(summary)
        : `${from}: ${r.images} images (${r.boxes} boxes, classes ${ds.names.join(', ')}), ${r.appended} records appended${summary.unlabelled ? `, ${summary.unlabelled} unlabelled left out` : ''}${summary.excluded ? `, ${summary.excluded} excluded` : ''}`,
    );
  });
}

async function exportLabelStudioCli(
  o: HomeOptions & { labelstudio: string; classes?: string; asOf?: string; status?: string; history?: boolean },
): Promise<void> {
  if (!o.classes)
    throw new LoupeError('BAD_OPTION', 'Label Studio needs the class names (records hold class ids): --classes a,b', {
      input: '--classes',
    });
  if (o.history)
    throw new LoupeError('BAD_OPTION', 'Label Studio tasks hold the latest labels of each image; --history is for --csv', {
      input: '--history',
    });
  const names = classList(o.classes, '--classes');
  await withStore(o, async (store) => {
    const records = await store.latest({ asOf: parseTime(o.asOf), status: o.status as LabelStatus | undefined });
    const bad = records.flatMap((r) => r.annotations.filter((a) => a.class_id >= names.length).map(() => r.source_ref));
    if (bad.length)
      throw new LoupeError(
        'LABEL_UNKNOWN_CLASS',
        `${bad.length} box(es) have a class id beyond the ${names.length} --classes, first in ${bad[0]}`,
        { input: '--classes' },
      );
    await writeFileAtomic(resolve(o.labelstudio), JSON.stringify(labelStudioTasksFromRecords(records, names), null, 1));
    out(`${o.labelstudio}: ${records.length} tasks`);
  });
}

export function register(program: Command): void {
  const labels = program
    .command('labels')
    .description('label store, ingest of device uploads, labelling jobs, labelling UI, simulated workforce');

  withHome(labels.command('import'))
    .description(
      "append labels to the label store: a feature-store CSV (the reference's labels.csv layout) as history, or a YOLO data set or Label Studio JSON export (one record per image); idempotent",
    )
    .option('--csv <file>', 'CSV with source_ref,image_width,image_height,image_depth,annotations,event_time,labeling_job,status')
    .option(
      '--yolo <data.yaml>',
      'a YOLO data set (ultralytics data.yaml; Roboflow-style ../train/images paths resolve as ultralytics resolves them)',
    )
    .option('--labelstudio <file>', "a Label Studio JSON export (rectanglelabels); images under --images (default the JSON's folder)")
    .option('--images <dir>', 'Label Studio: the folder holding the images')
    .option('--names <list>', 'Label Studio: class names in index order, comma-separated (default: the names found, sorted)')
    .option(
      '--ref-prefix <uri>',
      'YOLO/Label Studio: source_ref = this + the image id (where the images are uploaded, e.g. s3://bucket/datasets/parts/)',
    )
    .option('--status <status>', 'YOLO/Label Studio: APPROVED (finished labels, the default) or PENDING (to be verified)', 'APPROVED')
    .option(
      '--event-time <time>',
      "YOLO/Label Studio: the records' time (ISO 8601 or epoch seconds; default the imported file's modification time)",
    )
    .option('--until <time>', 'import the history as it stood then (ISO 8601 or epoch seconds): later records are left out')
    .option(
      '--exclude <file>',
      'leave these images out (a held-out benchmark set): a model card (its dataset.testImages) or a text file of image ids such as bad/x.jpg, one per line',
    )
    .option('--json', 'print a JSON summary')
    .action(
      async (
        o: HomeOptions & {
          csv?: string;
          yolo?: string;
          labelstudio?: string;
          images?: string;
          names?: string;
          refPrefix?: string;
          status: string;
          eventTime?: string;
          until?: string;
          exclude?: string;
          json?: boolean;
        },
      ) => {
        const given = [o.csv && '--csv', o.yolo && '--yolo', o.labelstudio && '--labelstudio'].filter(Boolean);
        if (given.length !== 1)
          throw new LoupeError(
            'BAD_OPTION',
            `give exactly one of --csv, --yolo, --labelstudio${given.length ? ` (got ${given.join(', ')})` : ''}`,
            { input: 'labels import' },
          );
        if (!o.csv) {
          await importLabelledCli(o);
          return;
        }
        const csv = o.csv;
        const until = parseTime(o.until, '--until');
        const exclude = o.exclude ? readImageIds(resolve(o.exclude)) : undefined;
        await withStore(o, async (store) => {
          const r = await importFeatureStoreCsv(store, resolve(csv), { until, exclude });
          out(
            o.json
              ? JSON.stringify(r)
              : `${csv}: ${r.read} records for ${r.images} images read, ${r.appended} appended${r.later ? `, ${r.later} after --until left out` : ''}${r.excluded ? `, ${r.excluded} of excluded images left out` : ''}`,
          );
        });
      },
    );

  withHome(labels.command('export'))
    .description('write the latest record per image as of T (or --history: every record) as a feature-store CSV, or as Label Studio tasks')
    .option('--csv <file>', 'output CSV (written atomically)')
    .option(
      '--labelstudio <file>',
      'output Label Studio JSON tasks (written atomically): data.image is the source_ref; labels become annotations, device detections on unlabelled images predictions',
    )
    .option('--classes <names>', 'Label Studio: class names in class-id order, comma-separated')
    .option('--as-of <time>', 'epoch seconds or ISO-8601')
    .option('--status <status>', 'only images whose latest record has this status')
    .option('--history', 'every record, not just the latest per image (CSV only)')
    .action(
      async (
        o: HomeOptions & { csv?: string; labelstudio?: string; classes?: string; asOf?: string; status?: string; history?: boolean },
      ) => {
        if (Boolean(o.csv) === Boolean(o.labelstudio))
          throw new LoupeError('BAD_OPTION', 'give exactly one of --csv, --labelstudio', { input: 'labels export' });
        if (o.labelstudio) {
          await exportLabelStudioCli({ ...o, labelstudio: o.labelstudio });
          return;
        }
        const csv = o.csv!;
        await withStore(o, async (store) => {
          const asOf = parseTime(o.asOf);
          let records = await store.latest({ asOf, status: o.status as LabelStatus | undefined });
          if (o.history) {
            records = (await Promise.all(records.map((r) => store.history(r.source_ref))))
              .flat()
              .filter((r) => asOf === undefined || r.event_time <= asOf);
          }
          await writeFeatureStoreCsv(
            resolve(csv),
            records.map(({ seq: _s, ...r }) => r),
          );
          out(`${csv}: ${records.length} records`);
        });
      },
    );

  withHome(labels.command('list'))
    .description('the latest record per image as of T')
    .option('--as-of <time>', 'epoch seconds or ISO-8601 (default now)')
    .option('--status <status>', 'PENDING, APPROVED or REJECTED')
    .option('--json', 'one JSON record per line')
    .action(async (o: HomeOptions & { asOf?: string; status?: string; json?: boolean }) => {
      if (o.status && !['PENDING', 'APPROVED', 'REJECTED'].includes(o.status))
        throw new LoupeError('BAD_OPTION', `must be PENDING, APPROVED or REJECTED, got ${o.status}`, { input: '--status' });
      await withStore(o, async (store) => {
        for (const r of await store.latest({ asOf: parseTime(o.asOf), status: o.status as LabelStatus | undefined })) {
          out(
            o.json
              ? JSON.stringify(r)
              : `${r.status.padEnd(8)} ${itemState(r).padEnd(21)} ${String(r.annotations.length).padStart(3)} boxes  ${new Date(r.event_time * 1000).toISOString()}  ${r.source_ref}`,
          );
        }
      });
    });

  withHome(labels.command('history'))
    .description('every record of one image, oldest first')
    .argument('<source-ref>')
    .action(async (ref: string, o: HomeOptions) => {
      await withStore(o, async (store) => {
        const h = await store.history(ref);
        if (h.length === 0) throw new LoupeError('LABEL_UNKNOWN', 'no records for this image', { input: ref });
        for (const r of h) out(JSON.stringify(r));
      });
    });

  withHome(labels.command('stats'))
    .description('images per state as of T')
    .option('--as-of <time>', 'epoch seconds or ISO-8601')
    .option('--json', 'JSON output')
    .action(async (o: HomeOptions & { asOf?: string; json?: boolean }) => {
      await withStore(o, async (store) => {
        const latest = await store.latest({ asOf: parseTime(o.asOf) });
        const counts: Record<string, number> = { unlabelled: 0, 'awaiting-verification': 0, approved: 0, rejected: 0 };
        for (const r of latest) counts[itemState(r)]!++;
        const s = {
          images: latest.length,
          records: store.count(),
          ...counts,
          boxesApproved: latest.filter((r) => r.status === 'APPROVED').reduce((n, r) => n + r.annotations.length, 0),
        };
        out(
          o.json
            ? JSON.stringify(s)
            : Object.entries(s)
                .map(([k, v]) => `${k}: ${v}`)
                .join('\n'),
        );
      });
    });

  withS3(withHome(labels.command('ingest')))
    .description('record new device uploads under incoming/ as unlabelled items (device detections as pre-annotations); idempotent')
    .option('--prefix <prefix>', 'key prefix', 'incoming/')
    .option('--json', 'JSON summary')
    .action(async (o: HomeOptions & S3Options & { prefix: string; json?: boolean }) => {
      if (!o.bucket) throw new LoupeError('BAD_OPTION', 'the bucket to read uploads from is required', { input: '--bucket' });
      const log = createLogger('ingest', { stream: 'stderr' });
      const store = openStoreFrom(o);
      const s3 = s3From(o)!;
      try {
        const r = await ingestIncoming({
          s3,
          bucket: o.bucket,
          prefix: o.prefix,
          store,
          statePath: join(homeDir(o), 'ingest-state.json'),
          log,
        });
        const { records: _r, ...summary } = r;
        out(
          o.json
            ? JSON.stringify(summary)
            : `listed ${r.listed} objects; ${r.recorded} new item(s) recorded, ${r.alreadyKnown} already known, ${r.incomplete} incomplete, ${r.invalid.length} invalid`,
        );
        if (r.invalid.length) process.exitCode = 1;
      } finally {
        s3.destroy();
        await store.close();
      }
    });

  const job = labels.command('job').description('labelling jobs');
  withHome(job.command('create'))
    .description('a job over the images that need labels (unlabelled or rejected), oldest first')
    .requiredOption('--classes <names>', 'comma-separated class names, in class-id order')
    .option('--name <name>', 'job name (re-creating an existing name returns it unchanged)')
    .option('--instructions <text>', 'what the workers should do', '')
    .option('--workers <n>', 'workers per image (1-9)', '1')
    .option('--cap <n>', 'at most this many images', '100')
    .option('--max-boxes <n>', "at most this many boxes in one worker's labels for one image", String(DEFAULT_MAX_BOXES))
    .option('--as-of <time>', 'pick images as the store stood at this time')
    .option('--json', 'JSON output')
    .action(
      async (
        o: HomeOptions & {
          classes: string;
          name?: string;
          instructions: string;
          workers: string;
          cap: string;
          maxBoxes: string;
          asOf?: string;
          json?: boolean;
        },
      ) => {
        await withStore(o, async (store) => {
          const lab = new Labeling(store);
          const classes = o.classes.split(',').map((s) => s.trim());
          if (classes.some((c) => !c))
            throw new LoupeError('BAD_OPTION', `empty class name in ${JSON.stringify(o.classes)}`, { input: '--classes' });
          const j = await lab.createJob({
            name: o.name,
            classes,
            instructions: o.instructions,
            workersPerImage: intOption(o.workers, '--workers', 1),
            cap: intOption(o.cap, '--cap', 1),
            maxBoxes: intOption(o.maxBoxes, '--max-boxes', 1),
            asOf: parseTime(o.asOf),
          });
          out(o.json ? JSON.stringify(j) : jobLine(j));
        });
      },
    );
  withHome(job.command('list'))
    .description('all jobs')
    .option('--json', 'one JSON object per line')
    .action(async (o: HomeOptions & { json?: boolean }) => {
      await withStore(o, async (store) => {
        for (const j of new Labeling(store).listJobs()) out(o.json ? JSON.stringify(j) : jobLine(j));
      });
    });
  withHome(job.command('show'))
    .description('one job and its images')
    .argument('<name>')
    .action(async (name: string, o: HomeOptions) => {
      await withStore(o, async (store) => {
        const lab = new Labeling(store);
        out(JSON.stringify({ job: lab.getJob(name), items: lab.items(name) }, null, 1));
      });
    });

  withS3(withHome(labels.command('serve')))
    .description('serve the labelling web UI; each worker logs in with their own credential (labels workers add)')
    .addOption(new Option('--token <token>', 'no longer accepted: one shared token let its holder act as every worker').hideHelp())
    .option('--port <port>', 'TCP port', '8080')
    .option('--host <host>', 'interface to bind', '127.0.0.1')
    .option(
      '--allowed-host <name>',
      'a host name browsers reach this server by (besides IP addresses and localhost), e.g. behind a proxy; repeatable',
      collect,
    )
    .option('--map <prefix=dir>', 'serve images whose source_ref starts with PREFIX from DIR (last two path parts); repeatable', collect)
    .action(async (o: HomeOptions & S3Options & { token?: string; port: string; host: string; allowedHost?: string[]; map?: string[] }) => {
      if (o.token !== undefined) {
        throw new LoupeError(
          'LABEL_SHARED_TOKEN',
          'shared tokens are gone: one holder could submit as every worker and approve their own labels. Issue each person a credential with `loupe labels workers add NAME` and let them log in with it',
          { input: '--token' },
        );
      }
      const log = createLogger('labels', { stream: 'stderr' });
      if (process.env.LOUPE_LABEL_TOKEN)
        log.warn('LOUPE_LABEL_TOKEN is no longer used: workers log in with their own credentials (loupe labels workers add NAME)');
      const store = openStoreFrom(o);
      const lab = new Labeling(store, { log });
      if (lab.workers.activeCount() === 0) {
        await store.close();
        throw new LoupeError(
          'LABEL_NO_WORKERS',
          'no worker has a credential yet; add one with `loupe labels workers add NAME [--roles label,verify]`',
          { input: homeDir(o) },
        );
      }
      const srv = await startLabelServer({
        lab,
        images: imageSourceFrom(o),
        port: intOption(o.port, '--port'),
        host: o.host,
        allowedHosts: o.allowedHost,
        log,
      });
      process.stderr.write(`labelling UI at ${srv.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((res) => {
        const stop = () => res();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await srv.stop();
      lab.close();
      await store.close();
    });

  const workers = labels
    .command('workers')
    .description('the labelling workforce: one credential per worker (stored hashed), with roles label and/or verify');
  const workerLine = (w: Worker) =>
    `${w.id.padEnd(20)} ${w.roles.join(',').padEnd(13)} ${w.revoked === null ? 'active ' : 'revoked'}  since ${new Date(w.created * 1000).toISOString()}  by ${w.issuedBy}`;
  const printCredential = (o: { json?: boolean }, c: { worker: Worker; token: string }) => {
    if (o.json) out(JSON.stringify(c));
    else {
      out(c.token);
      process.stderr.write(
        `credential for ${c.worker.id} (${c.worker.roles.join(', ')}): keep it now, only its hash is stored; the worker logs in with it\n`,
      );
    }
  };
  withHome(workers.command('add'))
    .description('issue a worker a credential (printed once on stdout)')
    .argument('<id>', 'worker id: 1-64 letters, digits, . _ @ -')
    .option('--roles <roles>', 'label, verify, or label,verify', 'label,verify')
    .option('--json', 'JSON output {worker, token}')
    .action(async (id: string, o: HomeOptions & { roles: string; json?: boolean }) => {
      await withStore(o, async (store) => {
        printCredential(o, new Labeling(store).workers.add(id, parseRoles(o.roles), `user:${userInfo().username}`));
      });
    });
  withHome(workers.command('rotate'))
    .description('issue a worker a new credential; the old one stops working at once')
    .argument('<id>')
    .option('--roles <roles>', 'change the roles too')
    .option('--json', 'JSON output {worker, token}')
    .action(async (id: string, o: HomeOptions & { roles?: string; json?: boolean }) => {
      await withStore(o, async (store) => {
        printCredential(o, new Labeling(store).workers.rotate(id, o.roles === undefined ? {} : { roles: parseRoles(o.roles) }));
      });
    });
  withHome(workers.command('revoke'))
    .description("revoke a worker's credential (their labels stay)")
    .argument('<id>')
    .action(async (id: string, o: HomeOptions) => {
      await withStore(o, async (store) => {
        out(workerLine(new Labeling(store).workers.revoke(id)));
      });
    });
  withHome(workers.command('list'))
    .description('every worker, active or revoked')
    .option('--json', 'one JSON object per line')
    .action(async (o: HomeOptions & { json?: boolean }) => {
      await withStore(o, async (store) => {
        for (const w of new Labeling(store).workers.list()) out(o.json ? JSON.stringify(w) : workerLine(w));
      });
    });

  withHome(labels.command('simulate'))
    .description('label (and verify) a job with simulated workers drawing from reference labels, with set noise and miss rates (seeded)')
    .requiredOption('--job <name>', 'the job')
    .option(
      '--truth-csv <file>',
      'reference labels (feature-store CSV); default: the reference records already in the store (s3://${bucket}/...)',
    )
    .option('--workers <n>', 'simulated workers (at least the job’s workers per image)', '3')
    .option('--noise <f>', 'box edge noise, fraction of the box size (std dev)', '0.03')
    .option('--miss <p>', 'probability of missing a box', '0.05')
    .option('--false-positive <p>', 'probability of one spurious box per image', '0')
    .option('--seed <n>', 'seed of the first worker (the others get seed+1, seed+2, …)', '1')
    .option('--no-verify', 'do not run the simulated verifier')
    .option('--json', 'JSON summary')
    .action(
      async (
        o: HomeOptions & {
          job: string;
          truthCsv?: string;
          workers: string;
          noise: string;
          miss: string;
          falsePositive: string;
          seed: string;
          verify: boolean;
          json?: boolean;
        },
      ) => {
        const log = createLogger('labels', { stream: 'stderr' });
        await withStore(o, async (store) => {
          const lab = new Labeling(store);
          let truthStore = store as SqliteLabelStore;
          let refPrefix: string | undefined = 's3://${bucket}/';
          if (o.truthCsv) {
            truthStore = openLabelStore(':memory:');
            await importFeatureStoreCsv(truthStore, resolve(o.truthCsv));
            refPrefix = undefined;
          }
          const truth = await truthFromStore(truthStore, { refPrefix });
          const n = intOption(o.workers, '--workers', 1);
          const seed = intOption(o.seed, '--seed');
          const workers = Array.from({ length: n }, (_, i) => ({
            id: `sim-${i + 1}`,
            seed: seed + i,
            noise: rateOption(o.noise, '--noise'),
            missRate: rateOption(o.miss, '--miss'),
            falsePositiveRate: rateOption(o.falsePositive, '--false-positive'),
          }));
          const labelled = await runSimulatedWorkforce(lab, o.job, { workers, truth, log });
          const verified = o.verify ? await runSimulatedVerifier(lab, o.job, { id: 'sim-verifier', truth, log }) : null;
          const summary = { job: lab.getJob(o.job), labelled, verified };
          out(
            o.json
              ? JSON.stringify(summary)
              : `${jobLine(summary.job)}\n${labelled.submitted} label(s) submitted, ${labelled.released.length} image(s) released (no reference labels)${verified ? `; ${verified.approved} approved, ${verified.rejected} rejected` : ''}`,
          );
          if (truthStore !== store) await truthStore.close();
        });
      },
    );
}
