import type { Command } from 'commander';
import { relative } from 'node:path';
import { LoupeError } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { defaultModelDir } from '../../lib/paths.js';
import { buildComponents, type Platform } from '../../components/build/build.js';
import { BUILD_COMPONENTS, type BuildComponentName } from '../../components/build/recipes.js';

/**
 * `loupe build`: the GDK-compatible packaging build (greengrass-build/): loupe.NodeRuntime (Node.js
 * per platform), per code component an artefact ZIP per platform with the compiled JS and its
 * production dependencies, loupe.Model with the model and its card, recipes with digests. Each
 * recipes/<component>/gdk-config.json's custom build command runs this for its component. Needs
 * the compiled dist/ (`npm run build`).
 */
export function register(program: Command): void {
  program
    .command('build')
    .description(
      'package the loupe components into greengrass-build/ (Node.js runtime and code ZIPs per platform, the model, recipes with digests)',
    )
    .option('--component <name...>', `only these (${BUILD_COMPONENTS.join(', ')})`)
    .option('--platform <p...>', 'linux-x64 and/or linux-arm64', ['linux-x64', 'linux-arm64'])
    .option('--out <dir>', 'output folder', 'greengrass-build')
    .option('--version <v>', 'version of the code components (default: package.json)')
    .option('--model <dir>', 'model folder for loupe.Model (model.onnx + card.json) (default: the shipped models/metal-tags)')
    .option('--model-name <name>', 'model name in loupe.Model (default: the model folder name)')
    .option('--model-version <v>', 'loupe.Model version', '1.0.0')
    .option('--json', 'print the result as JSON')
    .action(
      async (o: {
        component?: string[];
        platform: string[];
        out: string;
        version?: string;
        model?: string;
        modelName?: string;
        modelVersion: string;
        json?: boolean;
      }) => {
        const log = createLogger('build', { stream: 'stderr' });
        for (const c of o.component ?? [])
          if (!(BUILD_COMPONENTS as readonly string[]).includes(c))
            throw new LoupeError('cli.component', `unknown component (${BUILD_COMPONENTS.join(', ')})`, { input: `--component ${c}` });
        for (const p of o.platform)
          if (p !== 'linux-x64' && p !== 'linux-arm64')
            throw new LoupeError('cli.platform', 'must be linux-x64 or linux-arm64', { input: `--platform ${p}` });
        const r = await buildComponents({
          outDir: o.out,
          ...(o.version ? { version: o.version } : {}),
          ...(o.component ? { components: o.component as BuildComponentName[] } : {}),
          platforms: o.platform as Platform[],
          modelDir: o.model ?? defaultModelDir(),
          ...(o.modelName ? { modelName: o.modelName } : {}),
          modelVersion: o.modelVersion,
          log,
        });
        const summary = {
          outDir: r.outDir,
          recipes: r.recipes.map((x) => ({ component: x.component, version: x.version, path: relative(process.cwd(), x.path) })),
          artifacts: r.artifacts.map((a) => ({
            component: a.component,
            version: a.version,
            file: a.file,
            bytes: a.bytes,
            digest: a.digest,
          })),
        };
        process.stdout.write(
          o.json
            ? JSON.stringify(summary) + '\n'
            : summary.artifacts
                .map((a) => `${a.component}@${a.version} ${a.file} ${(a.bytes / 1e6).toFixed(1)} MB sha256:${a.digest}`)
                .join('\n') + '\n',
        );
      },
    );
}
