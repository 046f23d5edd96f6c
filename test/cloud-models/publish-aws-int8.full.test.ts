import { describe, expect, it } from 'vitest';
import { CreateComponentVersionCommand, ListComponentVersionsCommand, ListComponentsCommand } from '@aws-sdk/client-greengrassv2';
import { join } from 'node:path';
import { publishModel } from '../../cloud/publish/publish.js';
import { SHIPPED_MODEL_DIR } from '../../cloud/registry/seed.js';
import { fixtureModel } from '../helpers/models.js';
import { COMP_ARN, fleetRecipe as baseRecipe, publishAwsFixture } from '../helpers/publish-aws.js';

/**
 * Republishing an int8 version on AWS IoT Greengrass (control plane mocked, S3 real), beside
 * publish-aws.test.ts. Full tier: the int8 fixture is quantized in the trainer venv (Python)
 * when ~/.cache/loupe/test-models does not have it yet.
 */
describe('republishing an int8 version on AWS IoT Greengrass (control plane mocked, S3 real)', () => {
  const { state, gg, backend, files } = publishAwsFixture();

  it('a version the gate chose int8 for ships its int8 file as model.onnx; the fp32 file is refused for it', async () => {
    gg.on(ListComponentsCommand).resolves({ components: [{ componentName: 'loupe.Model', arn: COMP_ARN }] });
    gg.on(ListComponentVersionsCommand).resolves({ componentVersions: [{ componentName: 'loupe.Model', componentVersion: '1.0.0' }] });
    gg.on(CreateComponentVersionCommand).resolves({
      arn: `${COMP_ARN}:versions:1.0.1`,
      componentName: 'loupe.Model',
      componentVersion: '1.0.1',
      status: { componentState: 'DEPLOYABLE' },
    } as never);
    const int8 = await fixtureModel('metal-tags-int8');
    const v = await state.reg.register({
      group: 'metal-tags',
      onnx: join(SHIPPED_MODEL_DIR, 'model.onnx'),
      onnxInt8: int8,
      fleetPrecision: 'int8',
      source: 'test',
      idempotencyKey: 'int8-publish',
      status: { status: 'approved', reason: 'test', by: 'test' },
    });
    await expect(publishModel({ backend: backend(), store: state.fleet, model: v, files: files(), baseRecipe })).rejects.toThrow(
      /does not match registry version metal-tags:\d+/,
    );
    const out = await publishModel({
      backend: backend(),
      store: state.fleet,
      model: v,
      files: [{ name: 'model.onnx', path: int8 }],
      baseRecipe,
    });
    const recipe = JSON.parse(
      new TextDecoder().decode(gg.commandCalls(CreateComponentVersionCommand)[0]!.args[0].input.inlineRecipe as Uint8Array),
    );
    const int8Sha = v.artefacts.onnxInt8!.sha256;
    expect(out.version).toBe('1.0.1');
    expect(recipe.ComponentDescription).toBe(`loupe model ${v.ref} (int8 onnx sha256 ${int8Sha.slice(0, 12)}), published by loupe`);
    expect(recipe.ComponentConfiguration.DefaultConfiguration).toMatchObject({ sha256: int8Sha, modelRef: v.ref });
    const art = (recipe.Manifests[0].Artifacts as { Uri: string; Digest: string }[]).find((a) => a.Uri.endsWith('/model.onnx'))!;
    expect(art.Digest).toBe(Buffer.from(int8Sha, 'hex').toString('base64'));
  }, 600_000);
});
