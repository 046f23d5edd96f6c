import type { PipelineDefinition, PipelineStep } from '../../cloud/infra/pipeline.js';

/**
 * A small interpreter of SageMaker Pipeline definitions (schema 2020-12-01), as much of it as
 * loupe's definition uses, for the tests that walk the synthesised model-build pipeline with
 * loupe's own code behind each step. Written here because no library runs a pipeline definition
 * outside SageMaker (the SageMaker Python SDK's local mode needs Docker and its own Python
 * objects, not the JSON).
 *
 * What it does, as SageMaker documents it:
 *  - Parameters: the definition's defaults, replaced by the execution's values (strings, as
 *    StartPipelineExecution takes them, converted to the parameter's type).
 *  - Expressions: {Get: "Parameters.X"}, {Get: "Execution.X"} (PipelineExecutionId,
 *    PipelineExecutionArn, StartDateTime, PipelineName), {Get: "Steps.S.<property path>"}
 *    (dotted names, ['key'] and [n] subscripts, on the properties the step's runner returned),
 *    {"Std:Join": {On, Values}}, {"Std:JsonGet": {PropertyFile: {Get: "Steps.S.PropertyFiles.F"},
 *    Path}} (the step's property file, read through `readPropertyFile`, a dotted path into it).
 *  - Order: a step runs once every step it depends on finished, by DependsOn or by a data
 *    reference anywhere in its arguments; Condition steps evaluate their Conditions (Equals,
 *    GreaterThan[OrEqualTo], LessThan[OrEqualTo], Not, Or, In) and schedule IfSteps or ElseSteps;
 *    the others never run. An unresolvable reference, an unknown expression or condition type,
 *    or steps that can never run fail the walk with an error naming the step.
 */
export interface StepRunner {
  /** Run a Processing, Training or Lambda step with its arguments resolved; returns the step's properties. */
  (step: PipelineStep, args: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export interface PipelineWalk {
  /** Steps in the order they ran (Condition steps included). */
  ran: string[];
  /** Condition step → the branch taken. */
  conditions: Record<string, boolean>;
  /** Each step's properties (what `Steps.S.*` resolves against). */
  properties: Record<string, Record<string, unknown>>;
  /** Each step's resolved arguments. */
  args: Record<string, Record<string, unknown>>;
}

export interface WalkOptions {
  parameters?: { Name: string; Value: string }[];
  execution: { arn: string; startTime: Date; pipelineName: string };
  run: StepRunner;
  /** The JSON of a step's property file (its output `OutputName`, file `FilePath`). */
  readPropertyFile: (step: string, properties: Record<string, unknown>, outputName: string, filePath: string) => Promise<unknown>;
}

type Expr = Record<string, unknown>;

function stepRefs(v: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) for (const x of v) stepRefs(x, out);
  else if (v && typeof v === 'object') {
    const o = v as Expr;
    if (typeof o.Get === 'string' && o.Get.startsWith('Steps.')) out.add(o.Get.split('.')[1]!.split('[')[0]!);
    for (const x of Object.values(o)) stepRefs(x, out);
  }
  return out;
}

/** `A.B['c'].D[0]` → ['A', 'B', 'c', 'D', 0] */
function pathTokens(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /([^.[\]]+)|\['([^']*)'\]|\[(\d+)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path))) out.push(m[1] ?? m[2] ?? Number(m[3]));
  return out;
}

export async function walkPipeline(def: PipelineDefinition, o: WalkOptions): Promise<PipelineWalk> {
  if (def.Version !== '2020-12-01') throw new Error(`pipeline schema ${String(def.Version)} is not 2020-12-01`);
  const params: Record<string, unknown> = {};
  for (const p of def.Parameters) params[p.Name] = p.DefaultValue;
  for (const { Name, Value } of o.parameters ?? []) {
    const p = def.Parameters.find((x) => x.Name === Name);
    if (!p) throw new Error(`the execution sets parameter ${Name}, which the definition does not declare`);
    const v = p.Type === 'Integer' || p.Type === 'Float' ? Number(Value) : p.Type === 'Boolean' ? Value === 'true' : Value;
    if (typeof v === 'number' && (!Number.isFinite(v) || (p.Type === 'Integer' && !Number.isInteger(v))))
      throw new Error(`parameter ${Name}: ${Value} is not a ${p.Type}`);
    params[Name] = v;
  }
  const execution: Record<string, unknown> = {
    PipelineExecutionArn: o.execution.arn,
    PipelineExecutionId: o.execution.arn.split('/').at(-1),
    StartDateTime: o.execution.startTime.toISOString(),
    PipelineName: o.execution.pipelineName,
  };
  const walk: PipelineWalk = { ran: [], conditions: {}, properties: {}, args: {} };
  const steps = new Map<string, PipelineStep>();

  const get = async (path: string, where: string): Promise<unknown> => {
    const [root, ...rest] = pathTokens(path);
    if (root === 'Parameters') {
      const name = String(rest[0]);
      if (!(name in params)) throw new Error(`${where}: no parameter ${name}`);
      return params[name];
    }
    if (root === 'Execution') {
      const name = String(rest[0]);
      if (!(name in execution)) throw new Error(`${where}: no execution variable ${name}`);
      return execution[name];
    }
    if (root === 'Steps') {
      const [step, ...prop] = rest;
      const props = walk.properties[String(step)];
      if (!props) throw new Error(`${where}: step ${String(step)} has not run`);
      let v: unknown = props;
      for (const t of prop) {
        if (v === null || typeof v !== 'object' || !(t in (v as object)))
          throw new Error(`${where}: ${path} does not resolve (no ${String(t)} in the step's properties)`);
        v = (v as Record<string | number, unknown>)[t];
      }
      return v;
    }
    throw new Error(`${where}: unknown reference ${path}`);
  };

  const resolve = async (v: unknown, where: string): Promise<unknown> => {
    if (Array.isArray(v)) return Promise.all(v.map((x) => resolve(x, where)));
    if (!v || typeof v !== 'object') return v;
    const o2 = v as Expr;
    const keys = Object.keys(o2);
    if (keys.length === 1 && keys[0] === 'Get') return get(String(o2.Get), where);
    if (keys.length === 1 && keys[0] === 'Std:Join') {
      const j = o2['Std:Join'] as { On: string; Values: unknown[] };
      const vals = (await resolve(j.Values, where)) as unknown[];
      return vals.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(j.On);
    }
    if (keys.length === 1 && keys[0] === 'Std:JsonGet') {
      const j = o2['Std:JsonGet'] as { PropertyFile: { Get: string }; Path: string };
      const [, step, kind, file] = j.PropertyFile.Get.split('.');
      if (kind !== 'PropertyFiles') throw new Error(`${where}: JsonGet needs Steps.S.PropertyFiles.F, got ${j.PropertyFile.Get}`);
      const pf = steps.get(step!)?.PropertyFiles?.find((f) => f.PropertyFileName === file);
      if (!pf) throw new Error(`${where}: step ${step} declares no property file ${file}`);
      const props = walk.properties[step!];
      if (!props) throw new Error(`${where}: step ${step} has not run`);
      let doc = await o.readPropertyFile(step!, props, pf.OutputName, pf.FilePath);
      for (const t of pathTokens(j.Path)) {
        if (doc === null || typeof doc !== 'object' || !(t in (doc as object)))
          throw new Error(`${where}: ${j.Path} is not in ${step}'s ${pf.FilePath}`);
        doc = (doc as Record<string | number, unknown>)[t];
      }
      return doc;
    }
    if (keys.some((k) => k.startsWith('Std:'))) throw new Error(`${where}: unknown function ${keys.join(',')}`);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o2)) out[k] = await resolve(x, where);
    return out;
  };

  const condition = async (c: Record<string, unknown>, where: string): Promise<boolean> => {
    const l = async () => resolve(c.LeftValue, where);
    const r = async () => resolve(c.RightValue, where);
    switch (c.Type) {
      case 'Equals':
        return (await l()) === (await r());
      case 'GreaterThan':
        return Number(await l()) > Number(await r());
      case 'GreaterThanOrEqualTo':
        return Number(await l()) >= Number(await r());
      case 'LessThan':
        return Number(await l()) < Number(await r());
      case 'LessThanOrEqualTo':
        return Number(await l()) <= Number(await r());
      case 'Not':
        return !(await condition(c.Expression as Record<string, unknown>, where));
      case 'Or':
        for (const x of c.Conditions as Record<string, unknown>[]) if (await condition(x, where)) return true;
        return false;
      case 'In': {
        const v = await l();
        return ((await resolve(c.InValues, where)) as unknown[]).includes(v);
      }
      default:
        throw new Error(`${where}: condition type ${String(c.Type)} is not known`);
    }
  };

  const pending: PipelineStep[] = [...def.Steps];
  const skipped = new Set<string>();
  const register = (list: PipelineStep[]) => {
    for (const s of list) {
      if (steps.has(s.Name)) throw new Error(`step name ${s.Name} is used twice`);
      steps.set(s.Name, s);
    }
  };
  register(def.Steps);
  const nested = (s: PipelineStep) =>
    s.Type === 'Condition'
      ? [...((s.Arguments?.IfSteps as PipelineStep[]) ?? []), ...((s.Arguments?.ElseSteps as PipelineStep[]) ?? [])]
      : [];
  const all = (list: PipelineStep[]): PipelineStep[] => list.flatMap((s) => [s, ...all(nested(s))]);
  for (const s of all(def.Steps)) if (!steps.has(s.Name)) steps.set(s.Name, s);

  while (pending.length) {
    const ready = pending.findIndex((s) => {
      const deps = new Set([...(s.DependsOn ?? []), ...stepRefs(s.Type === 'Condition' ? s.Arguments?.Conditions : s.Arguments)]);
      for (const d of deps) {
        if (!steps.has(d)) throw new Error(`step ${s.Name} depends on ${d}, which the definition does not have`);
        if (!(d in walk.properties)) return false;
      }
      return true;
    });
    if (ready < 0) throw new Error(`steps ${pending.map((s) => s.Name).join(', ')} can never run (their dependencies did not run)`);
    const [s] = pending.splice(ready, 1) as [PipelineStep];
    walk.ran.push(s.Name);
    if (s.Type === 'Condition') {
      let ok = true;
      for (const c of (s.Arguments?.Conditions as Record<string, unknown>[]) ?? []) ok = ok && (await condition(c, s.Name));
      walk.conditions[s.Name] = ok;
      walk.properties[s.Name] = { Outcome: ok };
      const taken = ((ok ? s.Arguments?.IfSteps : s.Arguments?.ElseSteps) as PipelineStep[]) ?? [];
      const other = ((ok ? s.Arguments?.ElseSteps : s.Arguments?.IfSteps) as PipelineStep[]) ?? [];
      for (const x of all(other)) skipped.add(x.Name);
      pending.push(...taken);
      continue;
    }
    if (s.Type === 'Fail') throw new Error(`the pipeline reached Fail step ${s.Name}`);
    const args = (await resolve(s.Arguments ?? {}, s.Name)) as Record<string, unknown>;
    walk.args[s.Name] = args;
    walk.properties[s.Name] = await o.run(s, args);
  }
  return walk;
}
