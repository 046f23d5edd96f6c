import type { Command } from 'commander';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { writeCocoDataset } from '../../cloud/dataset/coco.js';
import { IMPORT_FORMATS, importDataset } from '../../cloud/dataset/import.js';
import { datasetStats, type DatasetStats } from '../../cloud/dataset/stats.js';
import { readYoloLabelled } from '../../cloud/dataset/yolo-labelled.js';
import { assertOutputFree, writeYoloDataset } from '../../cloud/dataset/yolo-write.js';
import { datasetVersion } from '../../cloud/dataset/version.js';
import { writeLabelStudio } from '../../cloud/dataset/labelstudio.js';

const out = (line: string) => process.stdout.write(line + '\n');

function namesOption(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const names = v.split(',').map((s) => s.trim());
  if (names.length === 0 || names.some((n) => !n))
    throw new LoupeError('BAD_OPTION', `class names must be a comma-separated list without empty entries, got ${JSON.stringify(v)}`, {
      input: '--names',
    });
  if (new Set(names).size !== names.length)
    throw new LoupeError('BAD_OPTION', `class names repeat: ${JSON.stringify(v)}`, { input: '--names' });
  return names;
}

function printStats(s: DatasetStats): void {
  out(`${s.yaml}: ${s.names.length} classes (${s.names.join(', ')})`);
  const rows = [...Object.entries(s.splits), ['total', s.total] as const];
  for (const [name, st] of rows) {
    if (!st) continue;
    const per = Object.entries(st.perClass)
      .map(([n, c]) => `${n} ${c.boxes}`)
      .join(', ');
    out(
      `  ${String(name).padEnd(5)} ${String(st.images).padStart(6)} images ${String(st.backgrounds).padStart(5)} backgrounds ${String(st.boxes).padStart(6)} boxes  [${per}]`,
    );
  }
  out(
    `  image sizes: ${Object.entries(s.imageSizes)
      .map(([k, v]) => `${k} x${v}`)
      .join(', ')}`,
  );
  if (s.boxSizes) {
    const f = (x: { min: number; median: number; max: number }) => `${x.min.toFixed(1)}/${x.median.toFixed(1)}/${x.max.toFixed(1)}`;
    out(`  box width px min/median/max ${f(s.boxSizes.width)}, height ${f(s.boxSizes.height)}`);
  }
}

export function register(program: Command): void {
  const ds = program
    .command('dataset')
    .description(
      'import, export and inspect labelled data sets (YOLO folders, Pascal VOC, feature-store CSV, Ground Truth manifests, COCO, Label Studio JSON)',
    );

  ds.command('import')
    .description('import labels into a YOLO data set folder (splits from a stable hash of each image id; written atomically)')
    .requiredOption('--format <format>', `label format: ${IMPORT_FORMATS.join('|')}`)
    .requiredOption(
      '--from <path>',
      'VOC folder (or one annotations folder, with --images), labels.csv, output manifest, COCO JSON, Label Studio JSON export, or a YOLO data.yaml',
    )
    .option('--images <dir>', 'folder holding the images, when not beside the labels (VOC: `--from ANNOTATIONS --images IMAGES`)')
    .requiredOption('--out <dir>', 'the YOLO folder to write (must not exist or be empty, unless --overwrite)')
    .option('--names <list>', 'class names in index order, comma-separated (labels of other classes are refused)')
    .option('--include-difficult', 'VOC: keep objects marked <difficult>1</difficult> (skipped by default, as ultralytics does)')
    .option('--attribute <name>', 'Ground Truth: the label attribute to read (when a manifest has several)')
    .option('--overwrite', 'replace an existing output folder')
    .option('--copy', 'copy images instead of hard-linking them')
    .option('--json', 'print one JSON object')
    .action(
      async (o: {
        format: string;
        from: string;
        images?: string;
        out: string;
        names?: string;
        includeDifficult?: boolean;
        attribute?: string;
        overwrite?: boolean;
        copy?: boolean;
        json?: boolean;
      }) => {
        const log = createLogger('dataset', { stream: 'stderr' });
        assertOutputFree(o.out, Boolean(o.overwrite)); // before the long import, not after it
        const imported = await importDataset(o.format, o.from, {
          imagesDir: o.images,
          names: namesOption(o.names),
          includeDifficult: o.includeDifficult,
          attribute: o.attribute,
          log,
        });
        if (imported.images.length === 0) throw new LoupeError('DATA_EMPTY', 'no labelled images to write', { input: o.from });
        const written = await writeYoloDataset(imported.names, imported.images, o.out, { overwrite: o.overwrite, copy: o.copy, log });
        const { unlabelled, ...rest } = imported.report;
        const summary = {
          data: written.yamlPath,
          version: written.version,
          names: imported.names,
          splits: written.manifest.counts,
          ...rest,
          unlabelled: unlabelled.length,
          unlabelledIds: unlabelled,
        };
        if (unlabelled.length)
          log.warn({ unlabelled: unlabelled.length, ids: unlabelled.slice(0, 20) }, 'images without labels were left out');
        if (o.json) out(JSON.stringify(summary));
        else {
          out(`wrote ${written.yamlPath}`);
          out(`  version ${written.version}`);
          out(
            `  ${rest.images} images, ${rest.boxes} boxes, classes ${imported.names.join(', ')}; train ${summary.splits.train} / val ${summary.splits.val} / test ${summary.splits.test}`,
          );
          out(
            `  ${rest.records} records read; unlabelled images left out: ${unlabelled.length}; difficult skipped: ${rest.skippedDifficult}; crowd skipped: ${rest.skippedCrowd}; duplicates dropped: ${rest.duplicates}; superseded: ${rest.superseded}; rejected: ${rest.rejected}; clipped: ${rest.clipped}`,
          );
        }
      },
    );

  ds.command('export')
    .description(
      'export a YOLO data set (data.yaml) as a YOLO folder (re-split by id), a COCO folder (annotations.json + images/) or a Label Studio folder (tasks.json + label_config.xml + images/)',
    )
    .requiredOption('--data <yaml>', 'data.yaml of the YOLO data set')
    .requiredOption('--format <format>', 'yolo|coco|labelstudio')
    .requiredOption('--out <path>', 'the folder to write')
    .option(
      '--image-url-prefix <url>',
      'Label Studio: what data.image starts with (default "images/", the exported folder; e.g. "/data/local-files/?d=parts/images/" or "s3://bucket/images/")',
    )
    .option('--overwrite', 'replace an existing output folder')
    .option('--json', 'print one JSON object')
    .action(async (o: { data: string; format: string; out: string; imageUrlPrefix?: string; overwrite?: boolean; json?: boolean }) => {
      const log = createLogger('dataset', { stream: 'stderr' });
      if (!['yolo', 'coco', 'labelstudio'].includes(o.format))
        throw new LoupeError('BAD_FORMAT', `unknown export format ${JSON.stringify(o.format)} (yolo, coco or labelstudio)`, {
          input: '--format',
        });
      assertOutputFree(o.out, Boolean(o.overwrite));
      const ds = await readYoloLabelled(o.data, { log });
      const version = datasetVersion(ds.names, ds.images);
      const summary =
        o.format === 'yolo'
          ? await writeYoloDataset(ds.names, ds.images, o.out, { overwrite: o.overwrite, log }).then((w) => ({
              format: 'yolo',
              path: w.yamlPath,
              version: w.version,
              images: ds.images.length,
              boxes: ds.report.boxes,
            }))
          : o.format === 'coco'
            ? await writeCocoDataset(ds.names, ds.images, o.out, { overwrite: o.overwrite, log }).then((w) => ({
                format: 'coco',
                path: w.jsonPath,
                version,
                images: ds.images.length,
                boxes: ds.report.boxes,
              }))
            : await writeLabelStudio(ds.names, ds.images, o.out, { overwrite: o.overwrite, imageUrlPrefix: o.imageUrlPrefix, log }).then(
                (w) => ({ format: 'labelstudio', path: w.jsonPath, version, images: ds.images.length, boxes: ds.report.boxes }),
              );
      if (o.json) out(JSON.stringify(summary));
      else out(`wrote ${summary.path} (${summary.images} images, ${summary.boxes} boxes, version ${summary.version})`);
    });

  ds.command('stats')
    .description('images, boxes and backgrounds per split and class, image and box sizes')
    .requiredOption('--data <yaml>', 'data.yaml of the YOLO data set')
    .option('--json', 'print one JSON object')
    .action(async (o: { data: string; json?: boolean }) => {
      const s = await datasetStats(o.data);
      if (o.json) out(JSON.stringify(s));
      else printStats(s);
    });
}
