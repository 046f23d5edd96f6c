import type { Command } from 'commander';
import { userInfo } from 'node:os';
import { LoupeError, errorMessage } from '../../lib/errors.js';
import { createLogger } from '../../lib/log.js';
import { loopHome, readLoopConfig, type LoopConfig } from '../../cloud/loop/config.js';
import { LoopEnv } from '../../cloud/loop/env.js';
import { deployModel, publishModel, rollback } from '../../cloud/publish/publish.js';
import { LocalNucleusFleet } from '../../cloud/publish/local-nucleus.js';
import { FleetTelemetry } from '../../cloud/publish/telemetry.js';
import { MODEL_COMPONENT } from '../../cloud/publish/model-component.js';
import { deployedArtefact } from '../../cloud/registry/types.js';

/**
 * `loupe fleet status|deploy|rollback`: the devices running loupe, through the loop's fleet
 * configuration (<home>/loop.json `fleet`: the local nucleus, or a Greengrass thing group).
 * `deploy` publishes an approved registry version as a loupe.Model component version and
 * deploys it (other components keep their versions); `rollback` redeploys the loupe.Model
 * version that ran before. Both wait for the deployment and exit 3 if it failed.
 */
export const DEPLOY_FAILED_EXIT = 3;

interface Opts {
  home?: string;
  config?: string;
  json?: boolean;
}

async function openEnv(o: Opts): Promise<LoopEnv> {
  const home = loopHome(o.home);
  const config: LoopConfig = readLoopConfig(o.config ?? home.config);
  if (!config.fleet)
    throw new LoupeError('LOOP_NO_FLEET', 'the loop configuration has no `fleet` section', { input: o.config ?? home.config });
  return LoopEnv.open(config, home, createLogger('fleet', { stream: 'stderr' }));
}

async function waitDeployment(env: LoopEnv, id: string): Promise<{ state: string; detail: Record<string, unknown> }> {
  const fleet = env.fleet;
  const f = env.config.fleet!;
  if (fleet instanceof LocalNucleusFleet) return fleet.waitForDeployment(id, f.deployTimeoutSeconds * 1000);
  return fleet.deploymentStatus(id);
}

export function register(program: Command): void {
  const fleet = program.command('fleet').description('the fleet: which model each device runs, deploy a registry version, roll back');
  const common = (c: Command) =>
    c
      .option('--home <dir>', 'loop home (default $LOUPE_HOME or ./.loupe)')
      .option('--config <file>', 'loop configuration (default <home>/loop.json)')
      .option('--json', 'machine-readable output');

  common(fleet.command('status').description('deployments loupe made, and the model each device runs'))
    .option('--listen <seconds>', 'also listen to device telemetry for this long', '0')
    .action(async (o: Opts & { listen: string }) => {
      const env = await openEnv(o);
      try {
        const deployments = env.fleetStore.deployments({ backend: env.fleet.kind, target: env.fleet.target });
        let devices: unknown[] = [];
        let devicesError: string | null = null;
        try {
          devices = await env.fleet.devices(MODEL_COMPONENT);
        } catch (e) {
          devicesError = errorMessage(e);
        }
        let telemetry: unknown[] = [];
        const listen = Number(o.listen);
        if (listen > 0 && env.config.fleet?.mqttUrl) {
          const t = await FleetTelemetry.connect(env.config.fleet.mqttUrl);
          await new Promise((r) => setTimeout(r, listen * 1000));
          telemetry = t.devices();
          await t.close();
        }
        const current = env.fleetStore.current(env.fleet.kind, env.fleet.target);
        const champion = await env.registry.champion(env.config.group);
        const out = {
          backend: env.fleet.kind,
          target: env.fleet.target,
          champion: champion?.ref ?? null,
          current: current ?? null,
          devices,
          devicesError,
          telemetry,
          deployments,
        };
        if (o.json) process.stdout.write(JSON.stringify(out) + '\n');
        else {
          const lines = [
            `fleet ${env.fleet.kind} ${env.fleet.target}; registry champion ${champion?.ref ?? '-'}`,
            current
              ? `current deployment ${current.name}: ${MODEL_COMPONENT} ${current.version} (${current.modelRef}), ${current.state}`
              : 'no deployment made by loupe yet',
            ...(devicesError
              ? [`devices: cannot ask the fleet (${devicesError})`]
              : (devices as { device: string; modelVersion: string | null; state: string | null }[]).map(
                  (d) => `device ${d.device}: ${MODEL_COMPONENT} ${d.modelVersion ?? '-'} ${d.state ?? ''}`,
                )),
            ...(telemetry as { thing: string; model: { version?: string; sha256?: string } | null; results: Record<string, number> }[]).map(
              (t) =>
                `telemetry ${t.thing}: model ${t.model?.version ?? '-'} ${t.model?.sha256?.slice(0, 12) ?? ''}; results ${JSON.stringify(t.results)}`,
            ),
            ...deployments.map(
              (d) =>
                `  ${d.createdAt}  ${d.kind.padEnd(8)} ${d.name.padEnd(28)} ${d.previousVersion ?? '-'} -> ${d.version} (${d.modelRef}) ${d.state}`,
            ),
          ];
          process.stdout.write(lines.join('\n') + '\n');
        }
      } finally {
        await env.close();
      }
    });

  common(fleet.command('deploy').description('publish an approved registry version and deploy it').argument('<ref>', 'group:version'))
    .option('--name <name>', 'deployment name (default loupe-manual-<ref>)')
    .action(async (ref: string, o: Opts & { name?: string }) => {
      const env = await openEnv(o);
      const log = createLogger('fleet', { stream: 'stderr' });
      try {
        const v = await env.registry.mustGet(ref);
        if (v.status !== 'approved')
          throw new LoupeError(
            'FLEET_NOT_APPROVED',
            `only approved versions are deployed (this one is ${v.status}); loupe models approve ${ref}`,
            { input: ref },
          );
        const files = [
          // The file the gate chose for the fleet (fp32 or int8), always named model.onnx on the device.
          { name: 'model.onnx', path: await env.registry.artefactPath(v, deployedArtefact(v).kind) },
          ...(v.artefacts.card ? [{ name: 'card.json', path: await env.registry.artefactPath(v, 'card') }] : []),
        ];
        const pub = await publishModel({
          backend: env.fleet,
          store: env.fleetStore,
          model: v,
          files,
          baseRecipe: await env.baseRecipe(),
          log,
        });
        const row = await deployModel({
          backend: env.fleet,
          store: env.fleetStore,
          modelRef: ref,
          version: pub.version,
          name: o.name ?? `loupe-manual-${ref.replace(':', '-v')}-${userInfo().username}`,
          log,
        });
        const st = await waitDeployment(env, row.deploymentId!);
        if (st.state === 'failed') env.fleetStore.updateDeployment(row.id, { state: 'failed', detail: st.detail });
        const out = {
          model: ref,
          component: pub.component,
          version: pub.version,
          deployment: row.name,
          deploymentId: row.deploymentId,
          previousVersion: row.previousVersion,
          state: st.state,
          detail: st.detail,
        };
        process.stdout.write(
          o.json ? JSON.stringify(out) + '\n' : `${ref} as ${MODEL_COMPONENT} ${pub.version}: deployment ${row.name} ${st.state}\n`,
        );
        if (st.state === 'failed') process.exitCode = DEPLOY_FAILED_EXIT;
      } finally {
        await env.close();
      }
    });

  common(fleet.command('rollback').description(`redeploy the ${MODEL_COMPONENT} version that ran before the current one`))
    .option('--to <version>', `a specific ${MODEL_COMPONENT} component version`)
    .option('--reject', 'also mark the rolled-back model as rejected in the registry')
    .option('--reason <text>', 'why (kept in the registry history with --reject)')
    .action(async (o: Opts & { to?: string; reject?: boolean; reason?: string }) => {
      const env = await openEnv(o);
      const log = createLogger('fleet', { stream: 'stderr' });
      try {
        const before = env.fleetStore.current(env.fleet.kind, env.fleet.target);
        const row = await rollback({ backend: env.fleet, store: env.fleetStore, to: o.to, log });
        const st = await waitDeployment(env, row.deploymentId!);
        if (st.state === 'failed') env.fleetStore.updateDeployment(row.id, { state: 'failed', detail: st.detail });
        else env.fleetStore.updateDeployment(row.id, { state: 'confirmed' });
        if (o.reject && before && !before.modelRef.startsWith('component:')) {
          const v = await env.registry.get(before.modelRef);
          if (v && v.status !== 'rejected')
            await env.registry.setStatus(v.ref, 'rejected', {
              by: `user:${userInfo().username}`,
              reason: o.reason ?? `rolled back from the fleet (${row.name})`,
            });
        }
        const out = {
          deployment: row.name,
          deploymentId: row.deploymentId,
          from: row.previousVersion,
          to: row.version,
          model: row.modelRef,
          state: st.state,
          detail: st.detail,
        };
        process.stdout.write(
          o.json
            ? JSON.stringify(out) + '\n'
            : `rolled back ${MODEL_COMPONENT} ${row.previousVersion} -> ${row.version} (${row.modelRef}): ${st.state}\n`,
        );
        if (st.state === 'failed') process.exitCode = DEPLOY_FAILED_EXIT;
      } finally {
        await env.close();
      }
    });
}
