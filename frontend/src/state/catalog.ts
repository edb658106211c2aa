/**
 * The server's catalogues (`GET /api/indicators`, `GET /api/strategies`) and
 * the pure logic around them: defaults, validation of user input against the
 * ranges the catalogue gives, and a canonical key for a parameter set.
 */

export interface ParamSpec {
  name: string;
  /** `integer` or `float` (anything else is treated as a float). */
  type: string;
  min: number;
  max: number;
  default: number;
  description?: string;
}

export interface IndicatorInfo {
  name: string;
  description?: string;
  /** Output fields of each value: `value`; `macd`, `signal`, `histogram`; ... */
  outputs: string[];
  params: ParamSpec[];
}

export interface StrategyInfo {
  name: string;
  description?: string;
  params: ParamSpec[];
}

export type Params = Record<string, number>;

export interface ValidationResult {
  /** The parsed values, complete (missing ones at their default); only meaningful when `ok`. */
  params: Params;
  /** Per parameter name, what is wrong. */
  errors: Record<string, string>;
  ok: boolean;
}

function isNum(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function parseSpec(raw: unknown): ParamSpec | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const p = raw as Record<string, unknown>;
  if (typeof p.name !== 'string' || !isNum(p.min) || !isNum(p.max) || !isNum(p.default)) return null;
  return {
    name: p.name,
    type: typeof p.type === 'string' ? p.type : 'float',
    min: p.min,
    max: p.max,
    default: p.default,
    description: typeof p.description === 'string' ? p.description : undefined,
  };
}

function parseSpecs(raw: unknown): ParamSpec[] {
  return Array.isArray(raw) ? raw.map(parseSpec).filter((p): p is ParamSpec => p !== null) : [];
}

/** Reads `{"indicators":[...]}`; entries without a name are dropped. */
export function parseIndicatorCatalog(body: unknown): IndicatorInfo[] {
  const list = (body as { indicators?: unknown })?.indicators;
  if (!Array.isArray(list)) return [];
  return list.flatMap((i) => {
    const o = i as Record<string, unknown>;
    if (typeof o?.name !== 'string') return [];
    const outputs = Array.isArray(o.outputs) ? o.outputs.filter((x): x is string => typeof x === 'string') : ['value'];
    return [{ name: o.name, description: typeof o.description === 'string' ? o.description : undefined, outputs, params: parseSpecs(o.params) }];
  });
}

/** Reads `{"strategies":[...]}`. */
export function parseStrategyCatalog(body: unknown): StrategyInfo[] {
  const list = (body as { strategies?: unknown })?.strategies;
  if (!Array.isArray(list)) return [];
  return list.flatMap((s) => {
    const o = s as Record<string, unknown>;
    if (typeof o?.name !== 'string') return [];
    return [{ name: o.name, description: typeof o.description === 'string' ? o.description : undefined, params: parseSpecs(o.params) }];
  });
}

export function defaultParams(specs: readonly ParamSpec[]): Params {
  return Object.fromEntries(specs.map((s) => [s.name, s.default]));
}

/** Checks one value against its spec; null when fine, else the message shown next to the field. */
export function checkParam(spec: ParamSpec, value: number): string | null {
  if (!Number.isFinite(value)) return `${spec.name} must be a number`;
  if (spec.type === 'integer' && !Number.isInteger(value)) return `${spec.name} must be a whole number`;
  if (value < spec.min || value > spec.max) return `${spec.name} must be within [${spec.min}, ${spec.max}]`;
  return null;
}

/**
 * Parses form text against the catalogue: empty fields take the default,
 * everything else must be a number of the right type inside [min, max].
 * Constraints between parameters (fast < slow) are the server's to check:
 * its 400 names them.
 */
export function validateParams(specs: readonly ParamSpec[], input: Record<string, string | number | undefined>): ValidationResult {
  const params: Params = {};
  const errors: Record<string, string> = {};
  for (const spec of specs) {
    const raw = input[spec.name];
    const text = raw === undefined ? '' : String(raw).trim();
    const value = text === '' ? spec.default : Number(text);
    const problem = checkParam(spec, value);
    if (problem) errors[spec.name] = problem;
    else params[spec.name] = value;
  }
  return { params, errors, ok: Object.keys(errors).length === 0 };
}

/** A stable text for a parameter set: keys sorted, numbers as JavaScript prints them (20.0 → 20). */
export function paramsKey(params: Record<string, unknown>): string {
  return Object.keys(params)
    .sort()
    .map((k) => `${k}=${typeof params[k] === 'number' ? String(params[k]) : JSON.stringify(params[k])}`)
    .join(',');
}

/** Short label for a legend or menu: `EMA 20`, `MACD 12,26,9`, `VWAP`. */
export function indicatorLabel(name: string, params: Params, specs?: readonly ParamSpec[]): string {
  const order = specs ? specs.map((s) => s.name) : Object.keys(params);
  const values = order.filter((k) => params[k] !== undefined).map((k) => String(params[k]));
  return values.length ? `${name.toUpperCase()} ${values.join(',')}` : name.toUpperCase();
}
