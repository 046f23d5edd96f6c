import { Ajv, type ErrorObject } from 'ajv';
import { LoupeError } from '../../lib/errors.js';

/**
 * JSON Schema (draft-07) for Greengrass v2 component recipes, format 2020-01-25, written from
 * the AWS IoT Greengrass V2 Developer Guide, "AWS IoT Greengrass component recipe reference"
 * (docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html), with the
 * structure of the GDK CLI's own recipe schema (aws-greengrass-gdk-cli, gdk/static/
 * recipe_schema.json) as a guide. Stricter than the GDK's in what loupe relies on: unknown keys
 * are refused (a misspelt key is otherwise silently ignored by the nucleus), versions are
 * semver, artefact digests are base64 SHA-256, and accessControl policies are checked.
 *
 * Recipe keys are case-insensitive, so a recipe is first normalised to the documented
 * PascalCase names (`normalizeRecipe`); configuration values are left as they are.
 */
const lifecycleStep = {
  oneOf: [
    { type: 'string' },
    {
      type: 'object',
      required: ['Script'],
      additionalProperties: false,
      properties: {
        Script: { type: 'string' },
        RequiresPrivilege: { type: ['boolean', 'string'] },
        Setenv: { $ref: '#/definitions/setenv' },
        Timeout: { type: ['integer', 'string'] },
        SkipIf: { type: 'string', pattern: '^(onpath|exists)\\s+\\S' },
      },
    },
  ],
};

export const recipeSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'AWS IoT Greengrass v2 component recipe (2020-01-25)',
  type: 'object',
  required: ['RecipeFormatVersion', 'ComponentName', 'ComponentVersion', 'Manifests'],
  additionalProperties: false,
  definitions: {
    setenv: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
    lifecycle: {
      type: 'object',
      additionalProperties: false,
      properties: {
        Setenv: { $ref: '#/definitions/setenv' },
        Bootstrap: lifecycleStep,
        Install: lifecycleStep,
        Startup: lifecycleStep,
        Run: lifecycleStep,
        Shutdown: lifecycleStep,
        Recover: lifecycleStep,
      },
    },
    permissionLevel: { type: 'string', enum: ['NONE', 'OWNER', 'ALL'] },
    artifact: {
      type: 'object',
      required: ['Uri'],
      additionalProperties: false,
      properties: {
        Uri: { type: 'string', pattern: '^(s3://[a-z0-9A-Z_.-]+/.+|greengrass:[A-Za-z0-9_.-]+|docker:.+|https://.+)$' },
        Digest: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
        Algorithm: { type: 'string', enum: ['SHA-256', 'SHA-384', 'SHA-512'] },
        Unarchive: { type: 'string', enum: ['ZIP', 'NONE'] },
        Permission: {
          type: 'object',
          additionalProperties: false,
          properties: { Read: { $ref: '#/definitions/permissionLevel' }, Execute: { $ref: '#/definitions/permissionLevel' } },
        },
      },
      dependencies: { Digest: ['Algorithm'] },
    },
    manifest: {
      type: 'object',
      required: ['Lifecycle'],
      additionalProperties: false,
      properties: {
        Name: { type: 'string' },
        Platform: {
          type: 'object',
          additionalProperties: { type: 'string' },
          properties: {
            os: { type: 'string', pattern: '^(\\*|all|linux|windows|darwin|/.+/)$' },
            architecture: { type: 'string', pattern: '^(\\*|all|amd64|x86|arm|aarch64|/.+/)$' },
          },
        },
        Lifecycle: { $ref: '#/definitions/lifecycle' },
        Selections: { type: 'array', items: { type: 'string' } },
        Artifacts: { type: 'array', items: { $ref: '#/definitions/artifact' } },
      },
    },
    policy: {
      type: 'object',
      required: ['operations', 'resources'],
      additionalProperties: false,
      properties: {
        policyDescription: { type: 'string' },
        operations: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(\\*|aws\\.greengrass#[A-Za-z]+)$' } },
        resources: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
      },
    },
  },
  properties: {
    RecipeFormatVersion: { type: 'string', enum: ['2020-01-25'] },
    ComponentName: { type: 'string', pattern: '^[a-zA-Z0-9-_.]+$', maxLength: 128 },
    ComponentVersion: {
      type: 'string',
      maxLength: 64,
      pattern: '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$',
    },
    ComponentType: {
      type: 'string',
      enum: ['aws.greengrass.generic', 'aws.greengrass.lambda', 'aws.greengrass.plugin', 'aws.greengrass.nucleus'],
    },
    ComponentDescription: { type: 'string' },
    ComponentPublisher: { type: 'string' },
    ComponentSource: { type: 'string' },
    ComponentConfiguration: {
      type: 'object',
      additionalProperties: false,
      properties: {
        DefaultConfiguration: {
          type: 'object',
          properties: {
            accessControl: {
              type: 'object',
              additionalProperties: false,
              patternProperties: {
                '^aws\\.greengrass\\.[A-Za-z.]+$': { type: 'object', additionalProperties: { $ref: '#/definitions/policy' } },
              },
            },
          },
        },
      },
    },
    ComponentDependencies: {
      type: 'object',
      additionalProperties: false,
      patternProperties: {
        '^[a-zA-Z0-9-_.]+$': {
          type: 'object',
          required: ['VersionRequirement'],
          additionalProperties: false,
          properties: { VersionRequirement: { type: 'string', minLength: 1 }, DependencyType: { type: 'string', enum: ['HARD', 'SOFT'] } },
        },
      },
    },
    Manifests: { type: 'array', minItems: 1, items: { $ref: '#/definitions/manifest' } },
    Lifecycle: { type: 'object' },
  },
} as const;

const CANONICAL = [
  'RecipeFormatVersion',
  'ComponentName',
  'ComponentVersion',
  'ComponentType',
  'ComponentDescription',
  'ComponentPublisher',
  'ComponentSource',
  'ComponentConfiguration',
  'DefaultConfiguration',
  'ComponentDependencies',
  'VersionRequirement',
  'DependencyType',
  'Manifests',
  'Name',
  'Platform',
  'Lifecycle',
  'Selections',
  'Artifacts',
  'Uri',
  'Digest',
  'Algorithm',
  'Unarchive',
  'Permission',
  'Read',
  'Execute',
  'Setenv',
  'Bootstrap',
  'Install',
  'Startup',
  'Run',
  'Shutdown',
  'Recover',
  'Script',
  'RequiresPrivilege',
  'Timeout',
  'SkipIf',
];
const byLower = new Map(CANONICAL.map((k) => [k.toLowerCase(), k]));

/** Recipe keys to their documented spelling; DefaultConfiguration, Setenv and dependency names kept. */
export function normalizeRecipe(r: unknown): unknown {
  const norm = (v: unknown, keepKeys: boolean): unknown => {
    if (Array.isArray(v)) return v.map((x) => norm(x, false));
    if (!v || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const key = keepKeys ? k : (byLower.get(k.toLowerCase()) ?? k);
      const keepChildren = key === 'ComponentDependencies' || key === 'Setenv' || key === 'Platform';
      out[key] = key === 'DefaultConfiguration' ? x : norm(x, keepChildren);
    }
    return out;
  };
  return norm(r, false);
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validateFn = ajv.compile(recipeSchema);

export function recipeErrors(recipe: unknown): string[] {
  if (validateFn(normalizeRecipe(recipe))) return [];
  return (validateFn.errors ?? []).map(
    (e: ErrorObject) =>
      `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
  );
}

/** Throw a LoupeError naming the recipe and every problem, unless it is valid. */
export function validateRecipe(recipe: unknown, name: string): void {
  const errors = recipeErrors(recipe);
  if (errors.length) throw new LoupeError('recipe.invalid', `not a valid Greengrass v2 recipe: ${errors.join('; ')}`, { input: name });
}
