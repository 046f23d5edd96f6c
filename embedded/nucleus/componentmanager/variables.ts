import { getPath, parsePointer } from '../config/pointer.js';

/**
 * Recipe variables, resolved the way the real nucleus does in lifecycle scripts and Setenv:
 *   {artifacts:path}  {artifacts:decompressedPath}  {work:path}  {kernel:rootPath}
 *   {iot:thingName}   {configuration:/json/pointer}
 * and, for *direct* dependencies only, {<Component>:artifacts:path},
 * {<Component>:artifacts:decompressedPath}, {<Component>:work:path},
 * {<Component>:configuration:/pointer}. Configuration scalars are inserted as text, maps and lists
 * as JSON. A variable that cannot be resolved stays as written (and is reported), as Greengrass
 * leaves it.
 */
export interface ComponentPaths {
  artifactsPath: string;
  decompressedPath: string;
  workPath: string;
  configuration: Record<string, unknown>;
}

export interface VariableContext extends ComponentPaths {
  componentName: string;
  rootPath: string;
  thingName: string;
  /** Direct dependencies, by name. */
  dependencies: ReadonlyMap<string, ComponentPaths>;
}

const OWN_NAMESPACES = new Set(['artifacts', 'work', 'kernel', 'iot', 'configuration']);
const VAR_RE = /\{([^{}\s]+?)\}/g;

function resolveIn(paths: ComponentPaths, ns: string, key: string): string | undefined {
  if (ns === 'artifacts' && key === 'path') return paths.artifactsPath;
  if (ns === 'artifacts' && key === 'decompressedPath') return paths.decompressedPath;
  if (ns === 'work' && key === 'path') return paths.workPath;
  if (ns === 'configuration') {
    let path: string[];
    try {
      path = parsePointer(key);
    } catch {
      return undefined;
    }
    const r = getPath(paths.configuration, path);
    if (!r.found || r.value === undefined) return undefined;
    if (r.value === null) return 'null';
    return typeof r.value === 'object' ? JSON.stringify(r.value) : String(r.value);
  }
  return undefined;
}

export function interpolate(text: string, ctx: VariableContext, unresolved?: (variable: string) => void): string {
  return text.replace(VAR_RE, (whole, body: string) => {
    const parts = body.split(':');
    if (parts.length < 2) return whole;
    let value: string | undefined;
    if (OWN_NAMESPACES.has(parts[0]!)) {
      const ns = parts[0]!;
      const key = parts.slice(1).join(':');
      if (ns === 'kernel' && key === 'rootPath') value = ctx.rootPath;
      else if (ns === 'iot' && key === 'thingName') value = ctx.thingName;
      else value = resolveIn(ctx, ns, key);
    } else if (parts.length >= 3) {
      const dep = ctx.dependencies.get(parts[0]!);
      if (dep) value = resolveIn(dep, parts[1]!, parts.slice(2).join(':'));
    } else {
      return whole; // not a recipe variable (e.g. a shell brace group)
    }
    if (value === undefined) {
      unresolved?.(whole);
      return whole;
    }
    return value;
  });
}

/**
 * Fill in system variables only ({iot:thingName}, {kernel:rootPath}, {artifacts:path},
 * {artifacts:decompressedPath}, {work:path}) in every string of a configuration value, as the
 * real nucleus does when interpolateComponentConfiguration is on. Configuration references and
 * other components' variables stay as written.
 */
export function interpolateSystemValues(v: unknown, ctx: VariableContext): unknown {
  const sys: VariableContext = { ...ctx, configuration: {}, dependencies: new Map() };
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return interpolate(x, sys);
    if (Array.isArray(x)) return x.map(walk);
    if (x !== null && typeof x === 'object') return Object.fromEntries(Object.entries(x).map(([k, c]) => [k, walk(c)]));
    return x;
  };
  return walk(v);
}
