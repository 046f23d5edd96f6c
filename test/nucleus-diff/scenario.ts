import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { projectRoot } from '../../lib/paths.js';
import { readAsRoot, type RunningNucleus } from '../helpers/real-nucleus.js';

/**
 * The differential scenario: one init-config file (the real nucleus's format) with many probe
 * components, started on the real nucleus and on loupe's, and the observables read back from each
 * (IPC results and streamed events, configuration after each update, lifecycle state sequences,
 * environment, identity, files in work and artefact folders, TES answers). Probes are batched
 * into one start-up per configuration variant because the real nucleus is slow to start.
 */
export const PROBE = join(projectRoot, 'test', 'fixtures', 'nucleus-diff', 'probe.mjs');
export const THING = 'diff-thing';
export const REGION = 'eu-west-3';

type Steps = Record<string, unknown>[];

interface Component {
  version?: string;
  dependencies?: string[];
  configuration?: Record<string, unknown>;
  lifecycle?: Record<string, unknown>;
  /** Probe steps: the component runs probe.mjs with these. */
  steps?: Steps;
  /** When the scenario is settled for this component. */
  settled: (states: string[], done: boolean) => boolean;
  /** Only in the variant whose deployment has no TES at all (`writeScenario({tes: false})`). */
  withoutTes?: true;
}

const PUBSUB = 'aws.greengrass.ipc.pubsub';
const MQTTPROXY = 'aws.greengrass.ipc.mqttproxy';
const op = (o: string) => `aws.greengrass#${o}`;
const now = (offsetMs = 0) => ({ $now: offsetMs });
const last = (s: string[]) => s.at(-1);
const probeDone = (_s: string[], done: boolean) => done;

const call = (label: string, method: string, request: Record<string, unknown> = {}) => ({ op: 'call', label, method, request });
const stream = (as: string, method: string, request: Record<string, unknown> = {}) => ({
  op: 'stream',
  label: `stream ${as}`,
  as,
  method,
  request,
});
const get = (label: string, keyPath: string[], componentName?: string) =>
  call(label, 'getConfiguration', { keyPath, ...(componentName ? { componentName } : {}) });
const update = (label: string, keyPath: string[], valueToMerge: unknown, timestamp: unknown = now()) =>
  call(label, 'updateConfiguration', { keyPath, valueToMerge, timestamp });
const publish = (topic: string, message: unknown = { n: topic }) =>
  call(`publish ${topic}`, 'publishToTopic', { topic, publishMessage: { jsonMessage: { message } } });
const publishBin = (topic: string, text: string) =>
  call(`publish-binary ${topic}`, 'publishToTopic', { topic, publishMessage: { binaryMessage: { message: { $bytes: text } } } });
const sub = (as: string, topic: string, receiveMode?: string) =>
  stream(as, 'subscribeToTopic', { topic, ...(receiveMode ? { receiveMode } : {}) });

const ACCESS_CONTROL_WRITE = {
  [PUBSUB]: { 'diff.Cfg:pubsub:evil': { policyDescription: 'granted over IPC', operations: ['*'], resources: ['*'] } },
};

function components(): Record<string, Component> {
  return {
    'diff.Env': {
      version: '1.0.0',
      dependencies: ['diff.Dep', 'aws.greengrass.TokenExchangeService'],
      configuration: { num: 42, str: 'text', flag: true, obj: { a: 1 }, list: [1, 'x'] },
      lifecycle: {
        setenv: {
          V_THING: '{iot:thingName}',
          V_ROOT: '{kernel:rootPath}',
          V_WORK: '{work:path}',
          V_ART: '{artifacts:path}',
          V_DEC: '{artifacts:decompressedPath}',
          V_CNUM: '{configuration:/num}',
          V_CSTR: '{configuration:/str}',
          V_CFLAG: '{configuration:/flag}',
          V_COBJ: '{configuration:/obj}',
          V_CLIST: '{configuration:/list}',
          V_CMISS: '{configuration:/missing}',
          V_DEPCFG: '{diff.Dep:configuration:/x}',
          V_DEPART: '{diff.Dep:artifacts:path}',
          V_DEPWORK: '{diff.Dep:work:path}',
          V_NONDEP: '{diff.Cfg:configuration:/leaf}',
          V_BADNS: '{nope:thing}',
          V_PLAIN: 'plain',
        },
        install: 'echo "install $(id -un) {iot:thingName} {configuration:/num}" > install.txt',
      },
      steps: [
        { op: 'identity' },
        { op: 'http', label: 'tes with the token', target: 'tes', auth: 'token' },
        { op: 'http', label: 'tes without a token', target: 'tes', auth: 'none' },
        { op: 'http', label: 'tes with a bad token', target: 'tes', auth: 'bad' },
        { op: 'http', label: 'tes other path', target: 'tes-other-path', auth: 'token' },
        { op: 'http', label: 'tes POST', target: 'tes', method: 'POST', auth: 'token' },
      ],
      settled: probeDone,
    },
    // The TES address (AWS_CONTAINER_CREDENTIALS_FULL_URI) is in the nucleus-wide setenv once TES
    // has started. diff.Env waits for TES (a dependency) and so has it; diff.TesVia does not
    // depend on TES but waits for diff.Env, which waits for TES, so it has it too. A component
    // that waits for neither races TES's start-up on the real nucleus (no fixed answer to
    // compare), so that case is diff.NoTes in a deployment without TES, where it never gets it.
    'diff.TesVia': { dependencies: ['diff.Env'], steps: [{ op: 'identity' }], settled: probeDone },
    'diff.NoTes': { steps: [{ op: 'identity' }], settled: probeDone, withoutTes: true },
    // No Startup/Run: STARTING -> FINISHED -> STOPPING -> FINISHED (its Shutdown runs). Settled only
    // after the second FINISHED: under load the real nucleus stops it more than the 3 s quiet
    // window after the first (CI compared the real one early once).
    'diff.Dep': { version: '1.2.0', configuration: { x: 'depx' }, settled: (s) => last(s) === 'FINISHED' && s.includes('STOPPING') },
    'diff.Priv': {
      lifecycle: {
        // The install step runs as root and leaves a root-owned file: the work folder is handed to
        // the component user before the first script runs, not after.
        install: { script: 'echo "install uid=$(id -u) home=$HOME" > priv-install.txt', requiresPrivilege: true },
        run: 'echo "run uid=$(id -u) home=$HOME user=$USER" > priv-run.txt',
      },
      settled: (s) => last(s) === 'FINISHED',
    },
    'diff.Cfg': {
      configuration: { leaf: 1, str: 'v', list: [1, 2], nested: { a: 1, b: { c: 2 } } },
      steps: [
        stream('sub-all', 'subscribeToConfigurationUpdate', { keyPath: [] }),
        stream('sub-nested', 'subscribeToConfigurationUpdate', { keyPath: ['nested'] }),
        stream('sub-leaf', 'subscribeToConfigurationUpdate', { keyPath: ['leaf'] }),
        stream('sub-missing', 'subscribeToConfigurationUpdate', { keyPath: ['missing'] }),
        stream('sub-no-component', 'subscribeToConfigurationUpdate', { componentName: 'no.Such', keyPath: [] }),
        stream('sub-dep', 'subscribeToConfigurationUpdate', { componentName: 'diff.Dep', keyPath: ['x'] }),
        stream('validate', 'subscribeToValidateConfigurationUpdates', {}),
        get('get whole', []),
        get('get leaf', ['leaf']),
        get('get map', ['nested']),
        get('get deep leaf', ['nested', 'b', 'c']),
        get('get list', ['list']),
        get('get missing key', ['missing']),
        get('get other component', [], 'diff.Dep'),
        get('get other component key', ['x'], 'diff.Dep'),
        get('get missing component', [], 'no.Such'),
        get('get accessControl', ['accessControl']),
        update('update leaf path', ['leaf'], { leaf: 5 }),
        get('after leaf path update', []),
        update('update root', [], { newKey: 'v', nested: { a: 2 } }),
        update('update container', ['nested'], { a: 3, d: { e: 4 } }),
        update('update container, older timestamp', ['nested'], { a: 9 }, { $date: 1000 }),
        update('update deep container, future timestamp', ['nested', 'b'], { c: 7 }, now(3_600_000)),
        // The real nucleus carries a write's time up to the maps above it asynchronously: wait
        // for that, so what follows does not race it.
        { op: 'sleep', ms: 1000 },
        update('update deep container, now (older than the future write)', ['nested', 'b'], { c: 8 }),
        update('update a new path, old timestamp', ['brand', 'new'], { k: 1 }, { $date: 1000 }),
        update('update a default leaf, old timestamp', ['str'], { str: 'w' }, { $date: 1000 }),
        update('update a list leaf path', ['list'], { list: [3] }),
        // Fails: the future write above made every map up to the root that new.
        update('update empty map', [], {}, now(2000)),
        update('write accessControl at the root', [], { accessControl: ACCESS_CONTROL_WRITE }),
        update('write accessControl by key path', ['accessControl'], ACCESS_CONTROL_WRITE),
        update('write accessControl below', ['accessControl', PUBSUB], ACCESS_CONTROL_WRITE[PUBSUB]),
        { op: 'sleep', ms: 1000 },
        get('final configuration', []),
        publish('evil/topic'),
      ],
      settled: probeDone,
    },
    'diff.PubB': {
      configuration: {
        accessControl: {
          [PUBSUB]: {
            'diff.PubB:pubsub:sub': {
              policyDescription: 'subscriber',
              operations: [op('SubscribeToTopic')],
              resources: ['deliver/#', 'deliver/+', 'deliver/x', 'deliver/+/z', 'star/*', 'esc/${*}', 'lit/+/x', 'q/?'],
            },
          },
        },
      },
      steps: [
        sub('exact', 'deliver/x'),
        sub('plus', 'deliver/+'),
        sub('hash', 'deliver/#'),
        sub('plus-mid', 'deliver/+/z'),
        sub('star-literal', 'star/*'),
        sub('star-other', 'star/abc'),
        sub('escaped-star', 'esc/*'),
        sub('escaped-star-other', 'esc/x'),
        sub('plus-literal', 'lit/+/x'),
        sub('question', 'q/a'),
        sub('unlisted', 'other/topic'),
        { op: 'touch', name: 'B-ready' },
        { op: 'wait', name: 'A-done' },
        { op: 'sleep', ms: 1000 },
        { op: 'close', as: 'exact' },
      ],
      settled: probeDone,
    },
    'diff.PubA': {
      configuration: {
        accessControl: {
          [PUBSUB]: {
            'diff.PubA:pubsub:open': {
              policyDescription: 'globs',
              operations: [op('PublishToTopic')],
              resources: ['deliver/*', 'open/*', 'star/*'],
            },
            'diff.PubA:pubsub:nores': { policyDescription: 'no resources', operations: [op('PublishToTopic')] },
            'diff.PubA:pubsub:esc': {
              policyDescription: 'escapes',
              operations: [op('PublishToTopic')],
              resources: ['esc/${*}', 'esc/${?}', 'esc/${$}', 'bad/${x}', 'bad2/${', 'q/?', 'dollar/$x'],
            },
            'diff.PubA:pubsub:mqtt': {
              policyDescription: 'mqtt wildcards',
              operations: [op('PublishToTopic')],
              resources: ['mq/+/x', 'mq/#'],
            },
            'diff.PubA:pubsub:anyop': { policyDescription: 'any operation', operations: ['*'], resources: ['anyop/t'] },
            'diff.PubA:pubsub:self': {
              policyDescription: 'own topics',
              operations: [op('SubscribeToTopic'), op('PublishToTopic')],
              resources: ['self/x', 'self/+'],
            },
            'diff.PubA:pubsub:wrongop': {
              policyDescription: 'an operation of another service',
              operations: [op('PublishToIoTCore')],
              resources: ['wrongop/t'],
            },
          },
        },
      },
      steps: [
        get('own configuration with accessControl', []),
        sub('self', 'self/x'),
        sub('self-plus', 'self/+'),
        sub('self-plus-all', 'self/+', 'RECEIVE_ALL_MESSAGES'),
        { op: 'wait', name: 'B-ready' },
        publish('deliver/x', { n: 1 }),
        publishBin('deliver/y', 'binary payload'),
        publish('deliver/y/z', { n: 3 }),
        publish('deliver'),
        publish('open/a/b'),
        publish('star/*'),
        publish('star/abc'),
        publish('nores/t'),
        publish('esc/*'),
        publish('esc/?'),
        publish('esc/$'),
        publish('esc/a'),
        publish('bad/${x}'),
        publish('bad/x'),
        publish('bad2/${'),
        publish('q/a'),
        publish('q/?'),
        publish('dollar/$x'),
        publish('mq/a/x'),
        publish('mq/+/x'),
        publish('mq/q'),
        publish('anyop/t'),
        publish('wrongop/t'),
        publish('self/x'),
        publish('deliver/+'),
        publish('deliver/#'),
        publish('lit/+/x'),
        { op: 'sleep', ms: 500 },
        { op: 'touch', name: 'A-done' },
      ],
      settled: probeDone,
    },
    'diff.Mqtt': {
      configuration: {
        topic: 'mq/from-config',
        accessControl: {
          [MQTTPROXY]: {
            'diff.Mqtt:mqttproxy:1': {
              policyDescription: 'IoT Core topics',
              operations: [op('PublishToIoTCore'), op('SubscribeToIoTCore')],
              resources: ['mq/{iot:thingName}/x', 'mq/+/y', 'mq/h/#', 'mq/${+}/z', '{configuration:/topic}', 'star/*/t'],
            },
            'diff.Mqtt:mqttproxy:nores': { policyDescription: 'no resources', operations: [op('PublishToIoTCore')] },
          },
        },
      },
      steps: [
        ...[
          'mq/diff-thing/x',
          'mq/{iot:thingName}/x',
          'mq/other/y',
          'mq/a/b/y',
          'mq/h',
          'mq/h/a/b',
          'mq/+/z',
          'mq/${+}/z',
          'mq/from-config',
          '{configuration:/topic}',
          'star/a/b/t',
          'nope/t',
        ].map((t) => call(`publish-iot ${t}`, 'publishToIoTCore', { topicName: t, qos: '1', payload: { $bytes: 'hello' } })),
        ...['mq/+/y', 'mq/h/#', 'mq/diff-thing/x', 'mq/#', 'nope/t'].map((t) =>
          stream(`iot ${t}`, 'subscribeToIoTCore', { topicName: t, qos: '0' }),
        ),
      ],
      settled: probeDone,
    },
    'diff.RunOk': {
      lifecycle: { run: 'echo run >> trace.txt; sleep 1; exit 0', shutdown: 'echo shutdown >> trace.txt' },
      settled: (s) => last(s) === 'FINISHED',
    },
    'diff.RunFail': {
      // The sleep keeps the failure after the RUNNING report: an error is counted for the state
      // the service is in when it is reported, and a script that dies at once races that report.
      lifecycle: {
        run: 'echo run >> trace.txt; sleep 3; exit 3',
        recover: 'echo recover >> trace.txt',
        shutdown: 'echo shutdown >> trace.txt',
      },
      settled: (s) => last(s) === 'BROKEN',
    },
    'diff.Startup': {
      lifecycle: { startup: 'echo startup >> trace.txt', shutdown: 'echo shutdown >> trace.txt' },
      settled: (s) => last(s) === 'RUNNING',
    },
    'diff.StartupFail': {
      lifecycle: { startup: 'echo startup >> trace.txt; exit 2' },
      settled: (s) => last(s) === 'BROKEN',
    },
    'diff.InstallFail': {
      lifecycle: { install: 'echo install >> trace.txt; exit 1', run: 'echo run >> trace.txt' },
      settled: (s) => last(s) === 'BROKEN',
    },
    'diff.SkipIf': {
      lifecycle: {
        install: { script: 'echo install >> trace.txt', skipif: 'onpath sh' },
        run: { script: 'echo run >> trace.txt', skipif: 'exists no-such-file' },
      },
      settled: (s) => last(s) === 'FINISHED',
    },
    'diff.State': {
      steps: [call('update state RUNNING', 'updateState', { state: 'RUNNING' })],
      settled: probeDone,
    },
    'diff.Defer': {
      steps: [
        call('defer before subscribing', 'deferComponentUpdate', {
          deploymentId: 'no-such-deployment',
          message: 'busy',
          recheckAfterMs: 1000,
        }),
        stream('updates', 'subscribeToComponentUpdates', {}),
        call('defer an unknown deployment', 'deferComponentUpdate', {
          deploymentId: 'no-such-deployment',
          message: 'busy',
          recheckAfterMs: 1000,
        }),
        call('defer with recheckAfterMs 2^31', 'deferComponentUpdate', { deploymentId: 'no-such-deployment', recheckAfterMs: 2 ** 31 }),
      ],
      settled: probeDone,
    },
    'diff.Cli': {
      configuration: {
        accessControl: {
          'aws.greengrass.Cli': { 'diff.Cli:cli:1': { policyDescription: 'all of the CLI', operations: ['*'], resources: ['*'] } },
        },
      },
      steps: [
        call('ListComponents', 'listComponents'),
        call('GetComponentDetails', 'getComponentDetails', { componentName: 'diff.Dep' }),
        call('RestartComponent', 'restartComponent', { componentName: 'diff.Dep' }),
        call('StopComponent', 'stopComponent', { componentName: 'diff.Dep' }),
        call('CreateLocalDeployment', 'createLocalDeployment', { rootComponentVersionsToAdd: { $map: { 'diff.Dep': '1.2.0' } } }),
        call('GetLocalDeploymentStatus', 'getLocalDeploymentStatus', { deploymentId: 'x' }),
        call('ListLocalDeployments', 'listLocalDeployments'),
        call('CancelLocalDeployment', 'cancelLocalDeployment', { deploymentId: 'x' }),
        call('CreateDebugPassword', 'createDebugPassword'),
        call('PauseComponent', 'pauseComponent', { componentName: 'diff.Dep' }),
        call('ResumeComponent', 'resumeComponent', { componentName: 'diff.Dep' }),
        call('GetSecretValue', 'getSecretValue', { secretId: 'x' }),
        call('GetThingShadow', 'getThingShadow', { thingName: THING, shadowName: 's' }),
        call('PutComponentMetric', 'putComponentMetric', { metrics: [{ name: 'm', unit: 'Count', value: 1 }] }),
        call('ValidateAuthorizationToken', 'validateAuthorizationToken', { token: 'x' }),
        call('VerifyClientDeviceIdentity', 'verifyClientDeviceIdentity', { credential: { clientDeviceCertificate: 'x' } }),
      ],
      settled: probeDone,
    },
    'diff.NoPolicy': {
      steps: [
        call('ListComponents without a policy', 'listComponents'),
        call('PublishToTopic without a policy', 'publishToTopic', { topic: 't', publishMessage: { jsonMessage: { message: { a: 1 } } } }),
        stream('subscribe without a policy', 'subscribeToTopic', { topic: 't' }),
        call('PublishToIoTCore without a policy', 'publishToIoTCore', { topicName: 't', qos: '0', payload: { $bytes: 'x' } }),
      ],
      settled: probeDone,
    },
  };
}

export interface Scenario {
  name: string;
  dir: string;
  initConfig: string;
  components: Record<string, Component>;
}

/**
 * Write the init-config and the probes' step files under `dir`. `tes: false`: the variant where
 * nothing names TES (its components are those marked `withoutTes`; the others need TES).
 */
export function writeScenario(dir: string, o: { name: string; interpolate?: boolean; only?: string[]; tes?: boolean }): Scenario {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const tes = o.tes ?? true;
  const all = Object.fromEntries(Object.entries(components()).filter(([, c]) => (c.withoutTes === true) === !tes));
  const comps = o.only ? Object.fromEntries(Object.entries(all).filter(([n]) => o.only!.includes(n))) : all;
  const services: Record<string, unknown> = {
    'aws.greengrass.Nucleus': {
      componentType: 'NUCLEUS',
      version: '2.18.0',
      configuration: {
        awsRegion: REGION,
        runWithDefault: { posixUser: 'ggc_user:ggc_group' },
        iotRoleAlias: 'DiffRoleAlias',
        // Has no effect on components defined in this file (checked: the real nucleus interpolates
        // only what it deploys), so one start-up covers both settings.
        interpolateComponentConfiguration: o.interpolate ?? false,
      },
    },
    main: { dependencies: [...Object.keys(comps), ...(tes ? ['aws.greengrass.TokenExchangeService'] : [])] },
  };
  for (const [name, c] of Object.entries(comps)) {
    const lifecycle: Record<string, unknown> = { ...(c.lifecycle ?? {}) };
    if (c.steps) {
      const stepsFile = join(dir, `${name}.steps.json`);
      writeFileSync(stepsFile, JSON.stringify(c.steps, null, 1));
      lifecycle.setenv = { ...((lifecycle.setenv as object) ?? {}), PROBE_STEPS: stepsFile, PROBE_SHARED: '../../probe-shared' };
      lifecycle.run = `exec node ${PROBE}`;
    }
    services[name] = {
      ...(c.version ? { version: c.version } : { version: '1.0.0' }),
      ...(c.dependencies ? { dependencies: c.dependencies } : {}),
      ...(Object.keys(lifecycle).length ? { lifecycle } : {}),
      ...(c.configuration ? { configuration: c.configuration } : {}),
    };
  }
  // No system.rootpath: each nucleus gets its own root on the command line (the real nucleus
  // hangs at start-up when -Droot and system.rootpath disagree).
  const config = { system: { thingName: THING }, services };
  const initConfig = join(dir, 'config.yaml');
  writeFileSync(initConfig, stringify(config));
  return { name: o.name, dir, initConfig, components: comps };
}

/** Make <root>/probe-shared (where probes leave sync files) before a nucleus starts on `root`. */
export function prepareRoot(root: string): void {
  mkdirSync(join(root, 'probe-shared'), { recursive: true });
  chmodSync(join(root, 'probe-shared'), 0o777);
}

export type ProbeRecord = Record<string, any>;

export function probeRecords(root: string, name: string): ProbeRecord[] {
  return readAsRoot(join(root, 'work', name, 'results.jsonl'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProbeRecord);
}

/**
 * Wait until every component of the scenario is settled: probes done, lifecycles at their end
 * state, and no state change anywhere for `quietMs` (the real nucleus takes a moment for the
 * transitions that follow, FINISHED -> STOPPING -> FINISHED say, on a loaded machine).
 */
export async function waitSettled(s: Scenario, n: RunningNucleus, timeoutMs: number, quietMs = 3000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let since = Date.now();
  for (;;) {
    const snapshot = JSON.stringify(Object.keys(s.components).map((name) => n.states(name)));
    if (snapshot !== last) {
      last = snapshot;
      since = Date.now();
    }
    const pending = Object.entries(s.components)
      .filter(
        ([name, c]) =>
          !c.settled(
            n.states(name),
            probeRecords(n.root, name).some((r) => r.op === 'done'),
          ),
      )
      .map(([name]) => name);
    if ((pending.length === 0 && Date.now() - since >= quietMs) || Date.now() > deadline) return pending;
    await new Promise((r) => setTimeout(r, 250));
  }
}

// --- observables ----------------------------------------------------------------------------

/** Replace what legitimately differs per run (root path, ports, tokens) by placeholders. */
export function normalize(v: unknown, root: string, tokens: string[]): unknown {
  if (typeof v === 'string') {
    let s = v.split(root).join('<root>');
    for (const t of tokens) if (t) s = s.split(t).join('<svcuid>');
    s = s.replace(/^http:\/\/(localhost|127\.0\.0\.1):\d+\//, 'http://$1:<port>/');
    return s;
  }
  if (Array.isArray(v)) return v.map((x) => normalize(x, root, tokens));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x, root, tokens)]));
  return v;
}

const sortedJson = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(sortedJson);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortedJson((v as Record<string, unknown>)[k])]),
    );
  return v;
};

interface FileEntry {
  path: string;
  type: string;
  mode: string;
  owner: string;
  content?: string;
}

function userNames(): { users: Map<number, string>; groups: Map<number, string> } {
  const users = new Map<number, string>();
  const groups = new Map<number, string>();
  for (const l of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const p = l.split(':');
    if (p.length > 3) users.set(Number(p[2]), p[0]!);
  }
  for (const l of readFileSync('/etc/group', 'utf8').split('\n')) {
    const p = l.split(':');
    if (p.length > 2) groups.set(Number(p[2]), p[0]!);
  }
  return { users, groups };
}

/** A folder's files (relative path, type, mode, owner:group, and text of small .txt files). */
export function listFiles(dir: string, opts: { skip?: (rel: string) => boolean } = {}): FileEntry[] {
  const { users, groups } = userNames();
  const out: FileEntry[] = [];
  const walk = (abs: string, rel: string) => {
    if (!existsSync(abs)) return;
    const st = lstatSync(abs);
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSocket() ? 'socket' : st.isSymbolicLink() ? 'symlink' : 'other';
    const e: FileEntry = {
      path: rel || '.',
      type,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      owner: `${users.get(st.uid) ?? st.uid}:${groups.get(st.gid) ?? st.gid}`,
    };
    if (type === 'file' && rel.endsWith('.txt') && st.size < 4096) e.content = readFileSync(abs, 'utf8');
    out.push(e);
    if (type === 'dir') for (const f of readdirSync(abs).sort()) if (!opts.skip?.(join(rel, f))) walk(join(abs, f), rel ? join(rel, f) : f);
  };
  walk(dir, '');
  return out;
}

/**
 * Every observable of one run, keyed by a readable name. `parentEnv` is the environment the
 * nucleus was started with: a probe's environment is reported as what the nucleus added,
 * changed or removed relative to it.
 */
export function observe(s: Scenario, n: RunningNucleus, parentEnv: NodeJS.ProcessEnv): Map<string, unknown> {
  const obs = new Map<string, unknown>();
  const tokens: string[] = [];
  const recs = new Map<string, ProbeRecord[]>();
  for (const name of Object.keys(s.components)) recs.set(name, probeRecords(n.root, name));
  for (const list of recs.values()) {
    const id = list.find((r) => r.label === 'identity' && r.ok);
    if (id) tokens.push(id.result.env.SVCUID);
  }
  const put = (k: string, v: unknown) => obs.set(k, sortedJson(normalize(v, n.root, tokens)));

  for (const [name, c] of Object.entries(s.components)) {
    put(`lifecycle ${name}: states`, n.states(name));
    const list = recs.get(name)!;
    if (!c.steps) continue;
    put(
      `probe ${name}: connect`,
      list.filter((r) => r.op === 'connect').map((r) => (r.ok ? 'ok' : r.error)),
    );
    for (const r of list.filter((x) => x.step !== undefined)) {
      if (r.label === 'identity' && r.ok) {
        const { env, ...rest } = r.result as { env: Record<string, string> };
        for (const [k, v] of Object.entries(rest)) put(`identity ${name}: ${k}`, v);
        const keys = new Set([...Object.keys(env), ...Object.keys(parentEnv)]);
        for (const k of [...keys].sort()) {
          if (env[k] === parentEnv[k]) continue;
          let v: unknown = env[k] ?? '(removed)';
          if (k === 'SVCUID' || k === 'AWS_CONTAINER_AUTHORIZATION_TOKEN')
            v = /^[A-Z0-9]{16}$/.test(String(v)) ? '<16 upper-case letters and digits>' : `(other format: ${String(v).length} chars)`;
          put(`env ${name}: ${k}`, v);
        }
        continue;
      }
      put(
        `ipc ${name}: #${String(r.step).padStart(2, '0')} ${r.label}`,
        r.ok ? { ok: true, result: r.result } : { ok: false, error: r.error },
      );
    }
    const events = new Map<string, unknown[]>();
    for (const r of list.filter((x) => x.event)) {
      const l = events.get(r.as) ?? [];
      l.push(r.event === 'message' ? r.message : r.event === 'streamError' ? { streamError: r.error } : { [r.event]: true });
      events.set(r.as, l);
    }
    for (const st of c.steps.filter((x) => x.op === 'stream')) {
      const as = String(st.as);
      // Whether the client reports "ended" for a stream the server refused depends on timing
      // in the client; what the server answered is in the step's own result.
      const refused = list.some((r) => r.label === `stream ${as}` && r.ok === false);
      const evs = (events.get(as) ?? []).filter((e) => !(refused && JSON.stringify(e) === '{"ended":true}'));
      // Order between different publishers is not defined; within one stream it is.
      put(`events ${name}: ${as}`, evs.map((e) => JSON.stringify(sortedJson(normalize(e, n.root, tokens)))).sort());
    }
  }
  // Files: each component's work folder, artefact folders, and the layout of the root.
  for (const name of Object.keys(s.components)) {
    put(
      `files work/${name}`,
      listFiles(join(n.root, 'work', name), { skip: (rel) => rel === 'results.jsonl' }).concat(
        listFiles(join(n.root, 'work', name))
          .filter((e) => e.path === 'results.jsonl')
          .map((e) => ({ ...e, content: '(probe output)' })),
      ),
    );
    put(`files packages/artifacts/${name}`, listFiles(join(n.root, 'packages', 'artifacts', name)));
    put(`files packages/artifacts-unarchived/${name}`, listFiles(join(n.root, 'packages', 'artifacts-unarchived', name)));
  }
  const rootEntries = [
    '.',
    'work',
    'logs',
    'config',
    'deployments',
    'packages',
    'packages/artifacts',
    'packages/artifacts-unarchived',
    'packages/recipes',
    'ipc.socket',
  ];
  for (const e of rootEntries) {
    const f = listFiles(join(n.root, e), { skip: () => true })[0];
    put(`files <root>/${e}`, f ? { type: f.type, mode: f.mode, owner: f.owner } : '(absent)');
  }
  for (const name of Object.keys(s.components)) {
    const f = listFiles(join(n.root, 'logs', `${name}.log`), { skip: () => true })[0];
    put(`files <root>/logs/${name}.log`, f ? { type: f.type, mode: f.mode, owner: f.owner } : '(absent)');
  }
  return obs;
}

export interface Row {
  observable: string;
  real: unknown;
  loupe: unknown;
  agree: boolean;
  deliberate?: string;
}

export function compare(real: Map<string, unknown>, loupe: Map<string, unknown>, deliberate: Record<string, string>): Row[] {
  const keys = [...new Set([...real.keys(), ...loupe.keys()])].sort();
  return keys.map((k) => {
    const r = real.has(k) ? real.get(k) : '(not observed)';
    const l = loupe.has(k) ? loupe.get(k) : '(not observed)';
    const agree = JSON.stringify(r) === JSON.stringify(l);
    const d = Object.entries(deliberate).find(
      ([pattern]) => k === pattern || (pattern.endsWith('*') && k.startsWith(pattern.slice(0, -1))),
    );
    return { observable: k, real: r, loupe: l, agree, ...(d && !agree ? { deliberate: d[1] } : {}) };
  });
}
