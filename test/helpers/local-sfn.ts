import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

// The package declares these types without exporting them.
export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
type EventLog = { type: string; state: { name: string }; Error?: unknown; Cause?: unknown };
import { parseInfraConfig, type InfraConfig } from '../../cloud/infra/config.js';
import type { PipelineDefinition } from '../../cloud/infra/pipeline.js';
import { readTemplate, resolveCfn, resourcesOf, type Template } from './cfn.js';
import { synthesizedOnce } from './synth-once.js';

// aws-local-stepfunctions 3 declares node >= 22; the one Node 22 API it uses is
// Promise.withResolvers (the Task state's timeout race). loupe supports Node 20, so every test
// that runs a state machine imports this helper, which supplies it there (ES2024 semantics;
// a no-op on Node 22). Kept here, once, rather than in each test.
if (!('withResolvers' in Promise)) {
  Object.defineProperty(Promise, 'withResolvers', {
    value<T>() {
      let resolve!: (v: T) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<T>((a, b) => ((resolve = a), (reject = b)));
      return { promise, resolve, reject };
    },
  });
}

export const SFN_ACCOUNT = '111122223333';
export const SFN_REGION = 'eu-west-1';

/** What the CDK app synthesises, resolved for one account and region: both state machines and the pipeline definition. */
export interface Synthesised {
  infra: InfraConfig;
  templates: Record<string, Template>;
  labelling: Record<string, unknown>;
  deploy: Record<string, unknown>;
  pipeline: PipelineDefinition;
  /** The pipeline's name as the model-build stack creates it. */
  pipelineName: string;
}

/**
 * Synthesise the example configuration (with a fleet deployment) and pull out the definitions.
 * The assembly is shared by the files of one vitest run asking for the same configuration
 * (synth-once.ts); `dir` holds it only outside such a run.
 */
export async function synthesiseDefinitions(
  dir: string,
  o: { account?: string; region?: string; patch?: (raw: Record<string, unknown>) => Record<string, unknown> } = {},
): Promise<Synthesised> {
  const account = o.account ?? SFN_ACCOUNT;
  const region = o.region ?? SFN_REGION;
  const raw = JSON.parse(readFileSync('cloud/infra/loupe.infra.example.json', 'utf8')) as Record<string, unknown>;
  const base = {
    ...raw,
    account,
    region,
    edge: {
      thingGroupName: 'press-line-3',
      components: { 'loupe.Camera': '1.0.0', 'loupe.Inference': '1.0.0', 'loupe.Uploader': '1.0.0', 'loupe.Model': '1.0.0' },
    },
  };
  const infra = parseInfraConfig(o.patch ? o.patch(base) : base, 'test');
  const summary = await synthesizedOnce(infra, join(dir, 'cdk.out'));
  const templates: Record<string, Template> = {};
  for (const s of summary.stacks) templates[s.name] = readTemplate(s.template);
  const ctx = { account, region, templates: Object.values(templates) };
  const stack = (suffix: string) => Object.entries(templates).find(([name]) => name.endsWith(suffix))![1];
  const machine = (t: Template) => {
    const [, p] = resourcesOf(t, 'AWS::StepFunctions::StateMachine')[0]!;
    return JSON.parse(resolveCfn(p.DefinitionString, t, ctx) as string) as Record<string, unknown>;
  };
  const mb = stack('-model-build');
  const [, pp] = resourcesOf(mb, 'AWS::SageMaker::Pipeline')[0]!;
  const body = resolveCfn(pp.PipelineDefinition, mb, ctx) as { PipelineDefinitionBody: string };
  return {
    infra,
    templates,
    labelling: machine(stack('-labelling')),
    deploy: machine(stack('-deploy')),
    pipeline: JSON.parse(body.PipelineDefinitionBody) as PipelineDefinition,
    pipelineName: String(pp.PipelineName),
  };
}

export interface Execution {
  /** The execution's output, or undefined when it failed. */
  output?: Record<string, unknown>;
  /** The Fail state's (or the execution's) error and cause, when it failed. */
  error?: { error: string; cause: string };
  /** Every state entered, in order (a retried Task appears once per entry, not per attempt). */
  path: string[];
  /** Each Task invocation, in order, with the input the definition built for it. */
  calls: { state: string; input: JSONValue }[];
  /** Task attempts that failed and were retried: state and error name. */
  retries: { state: string; error: string }[];
}

export type TaskHandler = (input: JSONValue) => Promise<JSONValue> | JSONValue;

/**
 * Execute a synthesised state machine with aws-local-stepfunctions (an independent ASL
 * interpreter: Choice rules, JSONPath, intrinsics, Retry/Catch, Wait): every Task state must
 * have a handler (nothing reaches AWS), each Wait state's time can be overridden (ms).
 */
export async function executeStateMachine(
  definition: Record<string, unknown>,
  o: {
    name: string;
    machine: string;
    input: Record<string, unknown>;
    tasks: Record<string, TaskHandler>;
    waits?: Record<string, number>;
    /** Retry intervals are real; tests that walk a Retry shrink them (0: no pause). */
    retryIntervals?: Record<string, number | number[]>;
  },
): Promise<Execution> {
  const taskStates = Object.entries(definition.States as Record<string, { Type: string }>)
    .filter(([, s]) => s.Type === 'Task')
    .map(([n]) => n)
    .sort();
  const missing = taskStates.filter((n) => !(n in o.tasks));
  if (missing.length) throw new Error(`no handler for the Task states ${missing.join(', ')}`);
  const calls: Execution['calls'] = [];
  const handlers = Object.fromEntries(
    Object.entries(o.tasks).map(([state, h]) => [
      state,
      async (i: JSONValue) => {
        calls.push({ state, input: i });
        return h(i);
      },
    ]),
  );
  const sm = new StateMachine(definition as never, { validationOptions: { checkArn: true, checkPaths: true } });
  const run = sm.run(o.input as JSONValue, {
    context: {
      Execution: { Name: o.name, Id: `arn:aws:states:${SFN_REGION}:${SFN_ACCOUNT}:execution:${o.machine}:${o.name}` },
    } as never,
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      waitTimeOverrides: o.waits ?? {},
      ...(o.retryIntervals ? { retryIntervalOverrides: o.retryIntervals } : {}),
    },
  });
  const path: string[] = [];
  const retries: Execution['retries'] = [];
  let failure: { error: string; cause: string } | undefined;
  const lastError = new Map<string, string>();
  const logs = (async () => {
    for await (const e of run.eventLogs as AsyncGenerator<EventLog>) {
      if (e.type === 'StateEntered') path.push(e.state.name);
      // A retried attempt: StateFailed (with the error) and then StateRetried for the same state.
      if (e.type === 'StateFailed') lastError.set(e.state.name, String(e.Error));
      if (e.type === 'StateRetried') retries.push({ state: e.state.name, error: lastError.get(e.state.name) ?? '' });
      if (e.type === 'ExecutionFailed') failure = { error: String(e.Error), cause: String(e.Cause) };
    }
  })();
  let output: Record<string, unknown> | undefined;
  try {
    output = (await run.result) as Record<string, unknown>;
  } catch (e) {
    failure ??= { error: (e as { name?: string }).name ?? 'Error', cause: String((e as Error).message ?? e) };
  }
  await logs;
  return { ...(output !== undefined ? { output } : {}), ...(failure ? { error: failure } : {}), path, calls, retries };
}

/** A Lambda handler as a Task state's handler: Step Functions hands it the JSON payload and keeps its JSON reply. */
export function task<E, R>(h: (event: E) => Promise<R>): TaskHandler {
  return async (input) => JSON.parse(JSON.stringify(await h(input as E))) as JSONValue;
}
