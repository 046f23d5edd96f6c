import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { projectRoot } from '../../lib/paths.js';

/**
 * `npm run coverage`, last step: vitest's json-summary (coverage/coverage-summary.json) per
 * top-level folder, as a table on stdout. istanbul's own summaries are overall or per file; the
 * folders are the design card's parts, which is how the figures are read.
 */
type Metric = { total: number; covered: number };
type FileSummary = Record<'statements' | 'branches' | 'functions' | 'lines', Metric>;

const METRICS = ['statements', 'branches', 'functions', 'lines'] as const;
const FOLDERS = ['cli', 'lib', 'contracts', 'components', 'cloud', 'embedded'];

const file = join(projectRoot, 'coverage', 'coverage-summary.json');
const summary = JSON.parse(readFileSync(file, 'utf8')) as Record<string, FileSummary>;

const sums = new Map<string, Record<(typeof METRICS)[number], Metric>>();
const blank = () => Object.fromEntries(METRICS.map((m) => [m, { total: 0, covered: 0 }])) as Record<(typeof METRICS)[number], Metric>;
for (const [path, s] of Object.entries(summary)) {
  if (path === 'total') continue;
  const folder = relative(projectRoot, path).split('/')[0]!;
  const acc = sums.get(folder) ?? blank();
  for (const m of METRICS) {
    acc[m].total += s[m].total;
    acc[m].covered += s[m].covered;
  }
  sums.set(folder, acc);
}
sums.set('all', summary.total ?? blank());

const pct = (m: Metric) => (m.total ? ((100 * m.covered) / m.total).toFixed(1) : '-').padStart(6);
console.log(`${'folder'.padEnd(12)}${METRICS.map((m) => m.padStart(18)).join('')}`);
for (const folder of [
  ...FOLDERS.filter((f) => sums.has(f)),
  ...[...sums.keys()].filter((f) => !FOLDERS.includes(f) && f !== 'all'),
  'all',
]) {
  const s = sums.get(folder)!;
  console.log(`${folder.padEnd(12)}${METRICS.map((m) => `${pct(s[m])}% of ${s[m].total}`.padStart(18)).join('')}`);
}
console.log('(per cent covered of the count; code run only in child processes is not measured)');
