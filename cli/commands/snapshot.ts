import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { createSnapshot, readSnapshotManifest } from '../../cloud/snapshot/index.js';
import { homeDir, imageSourceFrom, openStoreFrom, parseTime, type HomeOptions, type S3Options } from './labels.js';

const out = (line: string) => process.stdout.write(line + '\n');
const collect = (v: string, prev: string[] = []) => [...prev, v];

/** `loupe snapshot create|show`: data set snapshots as of T (approved labels only). */
export function register(program: Command): void {
  const snap = program
    .command('snapshot')
    .description('data set snapshots as of a time: approved labels only, stable splits, content-derived id');
  snap
    .command('create')
    .description('write <out>/<snapshot id>/ (YOLO folder + snapshot.json); reuses an identical snapshot')
    .option('--home <dir>', 'state folder (default $LOUPE_HOME or ./.loupe)')
    .option('--store <file>', 'label store database (default <home>/labels.db)')
    .option('--as-of <time>', 'epoch seconds or ISO-8601 (default now)')
    .requiredOption('--classes <names>', 'comma-separated class names, in class-id order')
    .option('--out <dir>', 'parent folder (default <home>/snapshots)')
    .option('--endpoint <url>', 'S3 endpoint for uploaded images (the embedded object store)')
    .option('--region <region>', 'S3 region')
    .option('--bucket <name>', 'bucket (only to enable S3 without --endpoint)')
    .option('--map <prefix=dir>', 'images whose source_ref starts with PREFIX come from DIR; repeatable', collect)
    .option('--json', 'print the snapshot as JSON')
    .action(async (o: HomeOptions & S3Options & { asOf?: string; classes: string; out?: string; map?: string[]; json?: boolean }) => {
      const classes = o.classes.split(',').map((s) => s.trim());
      if (classes.some((c) => !c))
        throw new LoupeError('BAD_OPTION', `empty class name in ${JSON.stringify(o.classes)}`, { input: '--classes' });
      const store = openStoreFrom(o);
      try {
        const s = await createSnapshot({
          store,
          images: imageSourceFrom(o),
          classes,
          asOf: parseTime(o.asOf),
          outDir: o.out ? resolve(o.out) : join(homeDir(o), 'snapshots'),
          log: createLogger('snapshot', { stream: 'stderr' }),
        });
        const { records: _r, ...head } = s.manifest;
        out(
          o.json
            ? JSON.stringify({ id: s.id, dir: s.dir, created: s.created, ...head, dataYaml: s.dataYaml })
            : `${s.id} ${s.created ? 'written' : 'already there'} at ${s.dir}: ${JSON.stringify(s.manifest.counts)}`,
        );
      } finally {
        await store.close();
      }
    });
  snap
    .command('show')
    .description("print a snapshot's manifest")
    .argument('<dir>')
    .action((dir: string) => {
      out(JSON.stringify(readSnapshotManifest(resolve(dir)), null, 1));
    });
}
