/**
 * Which top-level folders may import which, as data. A file in `from` (a folder, or one file)
 * may import a file under its own `from` and under any of `may` ('*' = anything of ours); every rule whose `from`
 * contains the importing file applies, so narrow exceptions sit beside the folder-wide rule and
 * say why. npm packages and node built-ins are not ours and are always allowed.
 */
export interface DependencyRule {
  from: string;
  may: readonly string[];
  why: string;
}

export const DEPENDENCY_RULES: readonly DependencyRule[] = [
  {
    from: 'lib',
    may: [],
    why: 'shared code with no domain knowledge (errors, files, logs, paths, SQLite, BMP): depends on nothing of ours',
  },
  {
    from: 'contracts',
    may: ['lib'],
    why: 'what crosses a boundary (IPC messages, upload sidecar, model card, label record, boxes): plain types and schemas',
  },
  {
    from: 'components',
    may: ['lib', 'contracts', 'components'],
    why: 'edge components ship alone in artefact ZIPs with what they import: never the cloud or the stand-ins',
  },
  { from: 'embedded', may: ['lib', 'contracts', 'embedded'], why: 'the stand-ins for AWS know protocols, not loupe’s cloud or components' },
  {
    from: 'embedded/stack',
    may: ['components/build/recipes.ts'],
    why: 'the edge stack deploys the suite from the same recipes a device gets',
  },
  {
    from: 'cloud',
    may: ['lib', 'contracts', 'cloud', 'components/detector'],
    why: 'one detector for device and cloud: the numbers the cloud gates on come from the code the device runs',
  },
  {
    from: 'cloud/publish',
    may: ['components/build', 'embedded/nucleus/cli-client.ts'],
    why: 'a new loupe.Model version is packaged and published as loupe build/publish do it (recipes, DEPLOYABLE polling); the local fleet adapter talks to the local nucleus as the AWS one talks to Greengrass',
  },
  { from: 'cli', may: ['*'], why: 'the composition root: commands and the demo wire every part together' },
  { from: 'test', may: ['*'], why: 'tests exercise every part' },
  { from: 'bin', may: ['dist'], why: 'the launcher runs the compiled CLI' },
];

/** Folders scanned for imports (every top-level folder holding code). */
export const CODE_FOLDERS = ['bin', 'cli', 'cloud', 'components', 'contracts', 'embedded', 'lib', 'test'] as const;
