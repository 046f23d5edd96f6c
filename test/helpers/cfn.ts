import { readFileSync } from 'node:fs';

/**
 * Synthesised CloudFormation, resolved the way CloudFormation would resolve it in one account
 * and region, for the checks that need concrete JSON (the state machine's ASL for asl-validator
 * and the interpreter, the pipeline definition for its checker, a function's environment):
 * pseudo parameters become the given account/region, `Fn::GetAtt [X, Arn]` an ARN named after
 * the logical id, `Fn::ImportValue` the value the exporting stack's output has, `Fn::Join` and
 * `Fn::Sub` are evaluated. Parameters (the CDK bootstrap version) stay as `<Ref:Name>`.
 */
export type Template = {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: unknown }>;
  Outputs?: Record<string, { Value: unknown; Export?: { Name: string } }>;
};

export interface ResolveContext {
  account: string;
  region: string;
  /** All templates of the assembly, for Fn::ImportValue. */
  templates: Template[];
}

const arnForType: Record<string, (id: string, c: ResolveContext) => string> = {
  'AWS::Lambda::Function': (id, c) => `arn:aws:lambda:${c.region}:${c.account}:function:${id}`,
  'AWS::IAM::Role': (id, c) => `arn:aws:iam::${c.account}:role/${id}`,
  'AWS::StepFunctions::StateMachine': (id, c) => `arn:aws:states:${c.region}:${c.account}:stateMachine:${id}`,
  'AWS::Logs::LogGroup': (id, c) => `arn:aws:logs:${c.region}:${c.account}:log-group:${id}:*`,
  'AWS::DynamoDB::Table': (id, c) => `arn:aws:dynamodb:${c.region}:${c.account}:table/${id}`,
  'AWS::IoT::RoleAlias': (id, c) => `arn:aws:iot:${c.region}:${c.account}:rolealias/${id}`,
};

export function readTemplate(file: string): Template {
  return JSON.parse(readFileSync(file, 'utf8')) as Template;
}

export function resolveCfn(value: unknown, t: Template, c: ResolveContext): unknown {
  const pseudo: Record<string, string> = {
    'AWS::AccountId': c.account,
    'AWS::Region': c.region,
    'AWS::Partition': 'aws',
    'AWS::URLSuffix': 'amazonaws.com',
    'AWS::StackName': 'stack',
  };
  const r = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(r);
    if (!v || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      const [k] = keys;
      const a = o[k!];
      if (k === 'Ref') {
        const name = String(a);
        if (name in pseudo) return pseudo[name];
        const res = t.Resources[name];
        return res ? name : `<Ref:${name}>`;
      }
      if (k === 'Fn::GetAtt') {
        const [id, attr] = a as [string, string];
        const res = t.Resources[id];
        if (attr === 'Arn' && res)
          return (
            arnForType[res.Type] ?? ((x: string) => `arn:aws:${res.Type.split('::')[1]!.toLowerCase()}:${c.region}:${c.account}:${x}`)
          )(id, c);
        return `${id}.${attr}`;
      }
      if (k === 'Fn::Join') {
        const [sep, parts] = a as [string, unknown[]];
        return (r(parts) as unknown[]).map(String).join(sep);
      }
      if (k === 'Fn::Sub') {
        const s = typeof a === 'string' ? a : (a as [string])[0];
        return s.replace(/\$\{([^}]+)\}/g, (_, n: string) => String(pseudo[n] ?? r({ Ref: n })));
      }
      if (k === 'Fn::ImportValue') {
        for (const other of c.templates)
          for (const out of Object.values(other.Outputs ?? {})) if (out.Export?.Name === a) return resolveCfn(out.Value, other, c);
        return `<Import:${String(a)}>`;
      }
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, r(x)]));
  };
  return r(value);
}

/** The resources of a type, as [logical id, properties]. */
export function resourcesOf(t: Template, type: string): [string, Record<string, unknown>][] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}
