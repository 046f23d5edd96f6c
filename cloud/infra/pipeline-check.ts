/**
 * A checker for SageMaker Pipeline definitions (JSON, schema version 2020-12-01), run on the
 * definition the CDK app synthesises. SageMaker validates a definition only when CreatePipeline
 * or UpdatePipeline is called against an account, and some mistakes (a property path into a
 * step that may not run, an Integer where a string is required) surface only when an execution
 * reaches the step; this finds them at synth time. What it enforces:
 *
 *  R1  version: `Version` is "2020-12-01" and there is at least one step.
 *  R2  names: step names are unique over the whole tree (condition branches included) and match
 *      SageMaker's pattern (letters, digits, `-`, `_`; at most 64).
 *  R3  step arguments: each step type has what SageMaker requires of it (Processing: image,
 *      cluster, role, inputs/outputs with unique names and local paths under /opt/ml/processing;
 *      Training: image and input mode, role, output path, resources, stopping condition, unique
 *      channel names; Condition: known condition types with both operands, IfSteps/ElseSteps;
 *      Lambda: a function ARN, unique typed output parameters; Fail: an error message).
 *  R4  parameters: unique names, a known type, a default of that type; every `Parameters.X`
 *      that is read is declared, and every declared parameter is read somewhere.
 *  R5  execution variables: `Execution.X` is one SageMaker defines.
 *  R6  step properties: `Steps.S.<path>` names a step other than the reader, and a path that
 *      step type has: a Processing step's `ProcessingOutputConfig.Outputs['<declared output>']
 *      .S3Output.S3Uri`, a Training step's `ModelArtifacts.S3ModelArtifacts`, `TrainingJobName`,
 *      ..., a Lambda step's `OutputParameters['<declared output>']`.
 *  R7  property files: `Std:JsonGet` reads `Steps.S.PropertyFiles.F` where F is declared on
 *      the Processing step S, on one of its outputs, with a relative file path and a JSON path.
 *  R8  `Std:Join` has a string separator and a list of values.
 *  R9  visibility: a step inside a condition branch runs only when that branch is taken, so only
 *      steps in the same branch (or nested deeper in it) may read its properties.
 *  R10 order: the graph of data references, DependsOn and branch containment has no cycle.
 *  R11 types: values SageMaker requires as strings (hyperparameters, container arguments and
 *      environment, Lambda arguments) are strings, or expressions that yield strings: an Integer
 *      or Float parameter must go through `Std:Join`, as the SageMaker Python SDK renders it.
 */
export interface PipelineIssue {
  rule: string;
  step: string | null;
  path: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const STEP_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const PARAM_TYPES = new Set(['String', 'Integer', 'Float', 'Boolean']);
const EXECUTION_VARS = new Set([
  'PipelineExecutionId',
  'PipelineExecutionArn',
  'StartDateTime',
  'CurrentDateTime',
  'PipelineName',
  'PipelineArn',
  'TrainingJobName',
  'ProcessingJobName',
]);
const CONDITIONS = new Set(['Equals', 'GreaterThan', 'GreaterThanOrEqualTo', 'LessThan', 'LessThanOrEqualTo', 'In', 'Not', 'Or']);
const TRAINING_PROPS = [
  /^ModelArtifacts\.S3ModelArtifacts$/,
  /^TrainingJobName$/,
  /^TrainingJobArn$/,
  /^TrainingJobStatus$/,
  /^OutputDataConfig\.S3OutputPath$/,
  /^AlgorithmSpecification\.TrainingImage$/,
  /^HyperParameters\['[^']+'\]$/,
  /^FinalMetricDataList\['[^']+'\]\.Value$/,
];
const PROCESSING_PROPS = [
  /^ProcessingJobName$/,
  /^ProcessingJobArn$/,
  /^ProcessingJobStatus$/,
  /^ProcessingOutputConfig\.Outputs\['([^']+)'\]\.S3Output\.S3Uri$/,
];
const JSON_PATH = /^[A-Za-z_][\w-]*(\[\d+\])?(\.[A-Za-z_][\w-]*(\[\d+\])?)*$/;

interface StepInfo {
  step: Obj;
  name: string;
  type: string;
  /** Branch path: condition step names and branch (`Gate.If`), outermost first. */
  branch: string[];
  outputs: Set<string>;
  propertyFiles: Map<string, { output: string; file: string }>;
  lambdaOutputs: Set<string>;
}

type ExprType = 'String' | 'Integer' | 'Float' | 'Boolean' | 'Any';

export function checkPipelineDefinition(definition: unknown): PipelineIssue[] {
  const issues: PipelineIssue[] = [];
  const add = (rule: string, step: string | null, path: string, message: string): void => {
    issues.push({ rule, step, path, message });
  };
  if (!isObj(definition)) return [{ rule: 'R1', step: null, path: '', message: 'the definition is not a JSON object' }];
  const def = definition;
  if (def.Version !== '2020-12-01') add('R1', null, 'Version', `expected "2020-12-01", got ${JSON.stringify(def.Version)}`);
  const top = Array.isArray(def.Steps) ? def.Steps : [];
  if (top.length === 0) add('R1', null, 'Steps', 'no steps');

  // ---- R4 parameters
  const params = new Map<string, string>();
  const used = new Set<string>();
  (Array.isArray(def.Parameters) ? def.Parameters : []).forEach((p, i) => {
    const at = `Parameters[${i}]`;
    if (!isObj(p) || typeof p.Name !== 'string') return add('R4', null, at, 'a parameter needs a Name');
    if (params.has(p.Name)) add('R4', null, at, `parameter ${p.Name} is declared twice`);
    const type = typeof p.Type === 'string' ? p.Type : '';
    if (!PARAM_TYPES.has(type)) add('R4', null, at, `parameter ${p.Name} has unknown type ${JSON.stringify(p.Type)}`);
    const d = p.DefaultValue;
    if (d !== undefined) {
      const ok =
        type === 'String'
          ? typeof d === 'string'
          : type === 'Integer'
            ? Number.isInteger(d)
            : type === 'Float'
              ? typeof d === 'number'
              : type === 'Boolean'
                ? typeof d === 'boolean'
                : true;
      if (!ok) add('R4', null, `${at}.DefaultValue`, `default ${JSON.stringify(d)} is not a ${type}`);
    }
    params.set(p.Name, type);
  });

  // ---- collect steps (R2)
  const steps = new Map<string, StepInfo>();
  const collect = (list: Json[], branch: string[], at: string) => {
    list.forEach((s, i) => {
      const where = `${at}[${i}]`;
      if (!isObj(s) || typeof s.Name !== 'string') return add('R2', null, where, 'a step needs a Name');
      if (!STEP_NAME.test(s.Name)) add('R2', s.Name, where, `step name ${JSON.stringify(s.Name)} does not match ${STEP_NAME.source}`);
      if (steps.has(s.Name)) add('R2', s.Name, where, `step name ${s.Name} is used twice`);
      const args = isObj(s.Arguments) ? s.Arguments : {};
      const outputs = new Set<string>();
      const poc =
        isObj(args.ProcessingOutputConfig) && Array.isArray(args.ProcessingOutputConfig.Outputs) ? args.ProcessingOutputConfig.Outputs : [];
      for (const o of poc) if (isObj(o) && typeof o.OutputName === 'string') outputs.add(o.OutputName);
      const propertyFiles = new Map<string, { output: string; file: string }>();
      for (const pf of Array.isArray(s.PropertyFiles) ? s.PropertyFiles : []) {
        if (isObj(pf) && typeof pf.PropertyFileName === 'string')
          propertyFiles.set(pf.PropertyFileName, { output: String(pf.OutputName), file: String(pf.FilePath) });
      }
      const lambdaOutputs = new Set<string>();
      for (const o of Array.isArray(s.OutputParameters) ? s.OutputParameters : [])
        if (isObj(o) && typeof o.OutputName === 'string') lambdaOutputs.add(o.OutputName);
      steps.set(s.Name, { step: s, name: s.Name, type: String(s.Type), branch, outputs, propertyFiles, lambdaOutputs });
      if (s.Type === 'Condition') {
        if (Array.isArray(args.IfSteps)) collect(args.IfSteps, [...branch, `${s.Name}.If`], `${where}.Arguments.IfSteps`);
        if (Array.isArray(args.ElseSteps)) collect(args.ElseSteps, [...branch, `${s.Name}.Else`], `${where}.Arguments.ElseSteps`);
      }
    });
  };
  collect(top, [], 'Steps');

  // ---- R3 arguments per type
  const need = (s: StepInfo, obj: Json | undefined, path: string[]) => {
    let v: Json | undefined = obj;
    for (const k of path) v = isObj(v) ? v[k] : undefined;
    if (v === undefined || v === null || v === '')
      add('R3', s.name, `Arguments.${path.join('.')}`, `a ${s.type} step needs Arguments.${path.join('.')}`);
    return v;
  };
  for (const s of steps.values()) {
    const a = isObj(s.step.Arguments) ? s.step.Arguments : undefined;
    switch (s.type) {
      case 'Processing': {
        need(s, a, ['AppSpecification', 'ImageUri']);
        for (const k of ['InstanceType', 'InstanceCount', 'VolumeSizeInGB']) need(s, a, ['ProcessingResources', 'ClusterConfig', k]);
        need(s, a, ['RoleArn']);
        const locals = new Map<string, string>();
        const inputs = isObj(a) && Array.isArray(a.ProcessingInputs) ? a.ProcessingInputs : [];
        const names = new Set<string>();
        inputs.forEach((inp, i) => {
          if (!isObj(inp)) return;
          if (names.has(String(inp.InputName)))
            add('R3', s.name, `Arguments.ProcessingInputs[${i}]`, `input name ${String(inp.InputName)} is used twice`);
          names.add(String(inp.InputName));
          const lp = isObj(inp.S3Input) ? inp.S3Input.LocalPath : undefined;
          checkLocal(s, `ProcessingInputs[${i}]`, lp, locals);
        });
        const outs =
          isObj(a) && isObj(a.ProcessingOutputConfig) && Array.isArray(a.ProcessingOutputConfig.Outputs)
            ? a.ProcessingOutputConfig.Outputs
            : [];
        const seen = new Set<string>();
        outs.forEach((o, i) => {
          if (!isObj(o)) return;
          if (seen.has(String(o.OutputName)))
            add('R3', s.name, `Arguments.ProcessingOutputConfig.Outputs[${i}]`, `output name ${String(o.OutputName)} is used twice`);
          seen.add(String(o.OutputName));
          if (!isObj(o.S3Output) || o.S3Output.S3Uri === undefined)
            add('R3', s.name, `Arguments.ProcessingOutputConfig.Outputs[${i}]`, 'an output needs S3Output.S3Uri');
          checkLocal(s, `ProcessingOutputConfig.Outputs[${i}]`, isObj(o.S3Output) ? o.S3Output.LocalPath : undefined, locals);
        });
        for (const [f, pf] of s.propertyFiles) {
          if (!s.outputs.has(pf.output))
            add('R7', s.name, `PropertyFiles.${f}`, `property file ${f} is on output ${pf.output}, which the step does not declare`);
          if (!pf.file || pf.file.startsWith('/') || pf.file.split('/').includes('..'))
            add('R7', s.name, `PropertyFiles.${f}`, `property file path ${JSON.stringify(pf.file)} must be relative to the output`);
        }
        break;
      }
      case 'Training': {
        need(s, a, ['AlgorithmSpecification', 'TrainingImage']);
        need(s, a, ['AlgorithmSpecification', 'TrainingInputMode']);
        need(s, a, ['RoleArn']);
        need(s, a, ['OutputDataConfig', 'S3OutputPath']);
        for (const k of ['InstanceType', 'InstanceCount', 'VolumeSizeInGB']) need(s, a, ['ResourceConfig', k]);
        need(s, a, ['StoppingCondition', 'MaxRuntimeInSeconds']);
        const chans = isObj(a) && Array.isArray(a.InputDataConfig) ? a.InputDataConfig : [];
        const names = new Set<string>();
        chans.forEach((c, i) => {
          if (!isObj(c)) return;
          if (names.has(String(c.ChannelName)))
            add('R3', s.name, `Arguments.InputDataConfig[${i}]`, `channel ${String(c.ChannelName)} is used twice`);
          names.add(String(c.ChannelName));
          if (!isObj(c.DataSource) || !isObj(c.DataSource.S3DataSource) || c.DataSource.S3DataSource.S3Uri === undefined)
            add('R3', s.name, `Arguments.InputDataConfig[${i}]`, 'a channel needs DataSource.S3DataSource.S3Uri');
        });
        if (s.propertyFiles.size) add('R7', s.name, 'PropertyFiles', 'only Processing steps have property files');
        break;
      }
      case 'Condition': {
        const conds = isObj(a) && Array.isArray(a.Conditions) ? a.Conditions : [];
        if (conds.length === 0) add('R3', s.name, 'Arguments.Conditions', 'a Condition step needs at least one condition');
        conds.forEach((c, i) => checkCondition(s, c, `Arguments.Conditions[${i}]`));
        if (!isObj(a) || !Array.isArray(a.IfSteps) || !Array.isArray(a.ElseSteps))
          add('R3', s.name, 'Arguments', 'a Condition step needs IfSteps and ElseSteps lists');
        break;
      }
      case 'Lambda': {
        if (typeof s.step.FunctionArn !== 'string' || s.step.FunctionArn === '')
          add('R3', s.name, 'FunctionArn', 'a Lambda step needs FunctionArn');
        const outs = Array.isArray(s.step.OutputParameters) ? s.step.OutputParameters : [];
        const names = new Set<string>();
        outs.forEach((o, i) => {
          if (!isObj(o)) return;
          if (names.has(String(o.OutputName)))
            add('R3', s.name, `OutputParameters[${i}]`, `output ${String(o.OutputName)} is declared twice`);
          names.add(String(o.OutputName));
          if (!PARAM_TYPES.has(String(o.OutputType)))
            add(
              'R3',
              s.name,
              `OutputParameters[${i}]`,
              `output type ${JSON.stringify(o.OutputType)} is not one of ${[...PARAM_TYPES].join(', ')}`,
            );
        });
        break;
      }
      case 'Fail':
        need(s, a, ['ErrorMessage']);
        break;
      default:
        add('R3', s.name, 'Type', `unknown step type ${JSON.stringify(s.step.Type)}`);
    }
  }

  function checkLocal(s: StepInfo, at: string, lp: Json | undefined, locals: Map<string, string>) {
    if (typeof lp !== 'string' || !lp.startsWith('/opt/ml/processing/'))
      return add('R3', s.name, `Arguments.${at}`, `LocalPath ${JSON.stringify(lp)} must be under /opt/ml/processing/`);
    const other = locals.get(lp);
    if (other) add('R3', s.name, `Arguments.${at}`, `LocalPath ${lp} is also used by ${other}`);
    locals.set(lp, at);
  }

  function checkCondition(s: StepInfo, c: Json, at: string) {
    if (!isObj(c) || !CONDITIONS.has(String(c.Type)))
      return add('R3', s.name, at, `unknown condition type ${JSON.stringify(isObj(c) ? c.Type : c)}`);
    if (c.Type === 'Not') return checkCondition(s, c.Condition ?? null, `${at}.Condition`);
    if (c.Type === 'Or') {
      if (!Array.isArray(c.Conditions) || c.Conditions.length === 0) return add('R3', s.name, at, 'an Or condition needs Conditions');
      return c.Conditions.forEach((x, i) => checkCondition(s, x, `${at}.Conditions[${i}]`));
    }
    if (c.Type === 'In') {
      if (c.QueryValue === undefined || !Array.isArray(c.Values)) add('R3', s.name, at, 'an In condition needs QueryValue and Values');
      return;
    }
    if (c.LeftValue === undefined || c.RightValue === undefined)
      add('R3', s.name, at, `a ${String(c.Type)} condition needs LeftValue and RightValue`);
  }

  // ---- walk every expression (R4-R9, R11) and build the dependency graph (R10)
  const edges = new Map<string, Set<string>>();
  const dep = (from: string, to: string) => {
    if (!edges.has(from)) edges.set(from, new Set());
    edges.get(from)!.add(to);
  };
  const visible = (reader: StepInfo, target: StepInfo) => target.branch.every((b, i) => reader.branch[i] === b);

  const typeOf = (s: StepInfo, e: Json, at: string): ExprType => {
    if (typeof e === 'string') return 'String';
    if (typeof e === 'number') return Number.isInteger(e) ? 'Integer' : 'Float';
    if (typeof e === 'boolean') return 'Boolean';
    if (!isObj(e)) return 'Any';
    if (typeof e.Get === 'string' && Object.keys(e).length === 1) return getType(s, e.Get, at);
    if ('Std:Join' in e) {
      const j = e['Std:Join'];
      if (!isObj(j) || typeof j.On !== 'string' || !Array.isArray(j.Values))
        add('R8', s.name, at, 'Std:Join needs On (a string) and Values (a list)');
      else j.Values.forEach((v, i) => walk(s, v, `${at}.Std:Join.Values[${i}]`));
      return 'String';
    }
    if ('Std:JsonGet' in e) {
      const g = e['Std:JsonGet'];
      if (!isObj(g) || !isObj(g.PropertyFile) || typeof g.PropertyFile.Get !== 'string' || typeof g.Path !== 'string') {
        add('R7', s.name, at, 'Std:JsonGet needs PropertyFile {Get: Steps.S.PropertyFiles.F} and Path');
        return 'Any';
      }
      const m = /^Steps\.([^.]+)\.PropertyFiles\.([^.]+)$/.exec(g.PropertyFile.Get);
      const target = m ? steps.get(m[1]!) : undefined;
      if (!m || !target)
        add(
          'R7',
          s.name,
          at,
          `Std:JsonGet reads ${g.PropertyFile.Get}: ${m ? `no step ${m[1]}` : 'not Steps.<step>.PropertyFiles.<file>'}`,
        );
      else {
        if (!target.propertyFiles.has(m[2]!)) add('R7', s.name, at, `step ${target.name} declares no property file ${m[2]}`);
        reference(s, target, at);
      }
      if (!JSON_PATH.test(g.Path)) add('R7', s.name, at, `JSON path ${JSON.stringify(g.Path)} is not a dotted path`);
      return 'Any';
    }
    return 'Any';
  };

  const reference = (s: StepInfo, target: StepInfo, at: string) => {
    if (target.name === s.name) return add('R6', s.name, at, 'a step cannot read its own properties');
    if (!visible(s, target))
      add('R9', s.name, at, `step ${target.name} runs only in branch ${target.branch.join(' > ')}, which does not contain ${s.name}`);
    dep(s.name, target.name);
  };

  const getType = (s: StepInfo, path: string, at: string): ExprType => {
    if (path.startsWith('Parameters.')) {
      const n = path.slice('Parameters.'.length);
      used.add(n);
      const t = params.get(n);
      if (!t) {
        add('R4', s.name, at, `parameter ${n} is not declared`);
        return 'Any';
      }
      return t as ExprType;
    }
    if (path.startsWith('Execution.')) {
      if (!EXECUTION_VARS.has(path.slice('Execution.'.length))) add('R5', s.name, at, `${path} is not an execution variable`);
      return 'String';
    }
    const m = /^Steps\.([^.]+)\.(.+)$/.exec(path);
    if (!m) {
      add('R6', s.name, at, `${path} is not Parameters.*, Execution.* or Steps.<step>.*`);
      return 'Any';
    }
    const target = steps.get(m[1]!);
    if (!target) {
      add('R6', s.name, at, `no step named ${m[1]}`);
      return 'Any';
    }
    reference(s, target, at);
    const prop = m[2]!;
    if (target.type === 'Processing') {
      const hit = PROCESSING_PROPS.map((r) => r.exec(prop)).find(Boolean);
      if (!hit)
        add(
          'R6',
          s.name,
          at,
          `a Processing step has no property ${prop}${prop.startsWith('PropertyFiles.') ? ' (property files are read with Std:JsonGet)' : ''}`,
        );
      else if (hit[1] && !target.outputs.has(hit[1]))
        add('R6', s.name, at, `step ${target.name} has no output ${hit[1]} (outputs: ${[...target.outputs].join(', ')})`);
    } else if (target.type === 'Training') {
      if (!TRAINING_PROPS.some((r) => r.test(prop))) add('R6', s.name, at, `a Training step has no property ${prop}`);
    } else if (target.type === 'Lambda') {
      const lm = /^OutputParameters\['([^']+)'\]$/.exec(prop);
      if (!lm) add('R6', s.name, at, `a Lambda step has no property ${prop}`);
      else if (!target.lambdaOutputs.has(lm[1]!)) add('R6', s.name, at, `step ${target.name} declares no output parameter ${lm[1]}`);
    } else if (target.type === 'Condition') {
      if (prop !== 'Outcome') add('R6', s.name, at, `a Condition step has only the property Outcome, not ${prop}`);
    } else add('R6', s.name, at, `step ${target.name} (${target.type}) has no readable properties`);
    return 'String';
  };

  const walk = (s: StepInfo, v: Json, at: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(s, x, `${at}[${i}]`));
    if (!isObj(v)) return;
    if (('Get' in v && Object.keys(v).length === 1) || 'Std:Join' in v || 'Std:JsonGet' in v) {
      typeOf(s, v, at);
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      // Nested steps are walked as steps of their own.
      if ((k === 'IfSteps' || k === 'ElseSteps') && s.type === 'Condition') continue;
      walk(s, x, at ? `${at}.${k}` : k);
    }
  };

  const mustBeString = (s: StepInfo, v: Json | undefined, at: string) => {
    if (v === undefined) return;
    const t = typeOf(s, v, at);
    if (t !== 'String' && t !== 'Any')
      add(
        'R11',
        s.name,
        at,
        `SageMaker needs a string here; a ${t} ${isObj(v) && 'Get' in v ? `(${String(v.Get)}) ` : ''}must go through Std:Join`,
      );
  };

  for (const s of steps.values()) {
    const a = isObj(s.step.Arguments) ? s.step.Arguments : {};
    walk(s, a, 'Arguments');
    for (const d of Array.isArray(s.step.DependsOn) ? s.step.DependsOn : []) {
      const target = steps.get(String(d));
      if (!target) add('R6', s.name, 'DependsOn', `DependsOn names no step ${String(d)}`);
      else reference(s, target, 'DependsOn');
    }
    if (s.type === 'Condition') {
      // The steps of a branch run after the condition.
      for (const key of ['IfSteps', 'ElseSteps'] as const)
        for (const x of Array.isArray(a[key]) ? a[key] : []) if (isObj(x) && typeof x.Name === 'string') dep(x.Name, s.name);
    }
    // R11: where SageMaker wants strings
    if (s.type === 'Training')
      for (const [k, v] of Object.entries(isObj(a.HyperParameters) ? a.HyperParameters : {}))
        mustBeString(s, v, `Arguments.HyperParameters.${k}`);
    if (s.type === 'Processing') {
      const app = isObj(a.AppSpecification) ? a.AppSpecification : {};
      for (const k of ['ContainerArguments', 'ContainerEntrypoint'] as const)
        (Array.isArray(app[k]) ? app[k] : []).forEach((v, i) => mustBeString(s, v, `Arguments.AppSpecification.${k}[${i}]`));
      for (const [k, v] of Object.entries(isObj(a.Environment) ? a.Environment : {})) mustBeString(s, v, `Arguments.Environment.${k}`);
    }
    if (s.type === 'Lambda') for (const [k, v] of Object.entries(a)) mustBeString(s, v, `Arguments.${k}`);
  }

  for (const n of params.keys()) if (!used.has(n)) add('R4', null, `Parameters.${n}`, `parameter ${n} is declared but never read`);

  // ---- R10 cycles
  const state = new Map<string, 1 | 2>();
  const visit = (n: string, trail: string[]): void => {
    if (state.get(n) === 2) return;
    if (state.get(n) === 1) {
      add('R10', n, 'DependsOn', `steps depend on each other in a cycle: ${[...trail.slice(trail.indexOf(n)), n].join(' -> ')}`);
      return;
    }
    state.set(n, 1);
    for (const m of edges.get(n) ?? []) visit(m, [...trail, n]);
    state.set(n, 2);
  };
  for (const n of steps.keys()) visit(n, []);
  return issues;
}

/** The steps in an order SageMaker could run them (dependencies first), condition branches after their condition. */
export function stepOrder(definition: { Steps: unknown[] }): string[] {
  const names: string[] = [];
  const deps = new Map<string, Set<string>>();
  const collect = (list: unknown[], parent: string | null) => {
    for (const s of list) {
      if (!isObj(s) || typeof s.Name !== 'string') continue;
      names.push(s.Name);
      const d = new Set<string>(parent ? [parent] : []);
      const text = JSON.stringify({
        ...s,
        Arguments: s.Type === 'Condition' && isObj(s.Arguments) ? { Conditions: s.Arguments.Conditions } : s.Arguments,
      });
      for (const m of text.matchAll(/"Steps\.([^."]+)\./g)) if (m[1] !== s.Name) d.add(m[1]!);
      for (const x of Array.isArray(s.DependsOn) ? s.DependsOn : []) d.add(String(x));
      deps.set(s.Name, d);
      if (s.Type === 'Condition' && isObj(s.Arguments)) {
        for (const key of ['IfSteps', 'ElseSteps']) if (Array.isArray(s.Arguments[key])) collect(s.Arguments[key], s.Name);
      }
    }
  };
  collect(definition.Steps, null);
  const out: string[] = [];
  const done = new Set<string>();
  while (out.length < names.length) {
    const next = names.find((n) => !done.has(n) && [...deps.get(n)!].every((d) => done.has(d)));
    if (!next) throw new Error(`no order: ${names.filter((n) => !done.has(n)).join(', ')} wait on each other`);
    out.push(next);
    done.add(next);
  }
  return out;
}
