import type { Logger } from 'pino';
import { LoupeError } from '../../lib/errors.js';
import { importCoco } from './coco.js';
import { importFeatureStore } from './featurestore.js';
import { importGroundTruth } from './groundtruth-manifest.js';
import type { ImportedDataset } from './types.js';
import { importVoc } from './voc.js';
import { importLabelStudio } from './labelstudio.js';
import { readYoloLabelled } from './yolo-labelled.js';

export const IMPORT_FORMATS = ['voc', 'featurestore', 'groundtruth', 'coco', 'labelstudio', 'yolo'] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export interface ImportOptions {
  /** Where the images are, when not beside the labels. */
  imagesDir?: string;
  /** Class names in index order (required to refuse unknown classes; defaults per format). */
  names?: string[];
  /** VOC: keep difficult objects. */
  includeDifficult?: boolean;
  /** Ground Truth: the label attribute. */
  attribute?: string;
  log?: Logger;
}

/** Import labels of any supported format into labelled images (one entry point for the CLI and the loop). */
export function importDataset(format: string, from: string, opts: ImportOptions = {}): Promise<ImportedDataset> {
  switch (format as ImportFormat) {
    case 'voc':
      return importVoc(from, { imagesDir: opts.imagesDir, names: opts.names, includeDifficult: opts.includeDifficult, log: opts.log });
    case 'featurestore':
      return importFeatureStore(from, { imagesDir: opts.imagesDir, names: opts.names, log: opts.log });
    case 'groundtruth':
      return importGroundTruth(from, { imagesDir: opts.imagesDir, names: opts.names, attribute: opts.attribute, log: opts.log });
    case 'coco':
      return importCoco(from, { imagesDir: opts.imagesDir, names: opts.names, log: opts.log });
    case 'labelstudio':
      return importLabelStudio(from, { imagesDir: opts.imagesDir, names: opts.names, log: opts.log });
    case 'yolo':
      if (opts.imagesDir)
        throw new LoupeError('BAD_OPTION', 'a YOLO data set names its images in data.yaml; --images does not apply', { input: '--images' });
      return readYoloLabelled(from, { log: opts.log }).then((d) => (opts.names ? renameClasses(d, opts.names, from) : d));
    default:
      throw new LoupeError('BAD_FORMAT', `unknown format ${JSON.stringify(format)} (one of ${IMPORT_FORMATS.join(', ')})`, {
        input: '--format',
      });
  }
}

/** A YOLO set read with `--names`: its own names must be those, in that order (YOLO files hold indexes only). */
function renameClasses(d: ImportedDataset, names: string[], from: string): ImportedDataset {
  if (names.join('\n') !== d.names.join('\n')) {
    throw new LoupeError('DATA_BAD_NAMES', `data.yaml names ${JSON.stringify(d.names)} differ from --names ${JSON.stringify(names)}`, {
      input: from,
    });
  }
  return d;
}
