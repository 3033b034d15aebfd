import { labelKeyError, labelValueError } from '../../shared/labels.js';

/**
 * Checks a label selector in kubectl's `-l` syntax before it goes into a manifest, so that a
 * typo fails at `noma init` instead of when the coordinator resolves it. The grammar is that of
 * k8s.io/apimachinery/pkg/labels.Parse: comma-separated requirements `key`, `!key`,
 * `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>1`, `key<1`.
 */
export function selectorError(selector: string): string | undefined {
  if (selector.trim() === '') return 'must not be empty';
  for (const raw of splitTopLevel(selector)) {
    const err = requirementError(raw.trim());
    if (err !== undefined) return err;
  }
  return undefined;
}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(selector.slice(start));
  return parts;
}

const KEY = '([A-Za-z0-9][-A-Za-z0-9_./]*)';
const EXISTS = new RegExp(`^!?\\s*${KEY}$`);
const SET = new RegExp(`^${KEY}\\s+(in|notin)\\s*\\((.*)\\)$`);
const COMPARE = new RegExp(`^${KEY}\\s*(==|!=|=|>|<)\\s*(\\S*)$`);

function keyError(key: string): string | undefined {
  const err = labelKeyError(key);
  return err === undefined ? undefined : `label key "${key}": ${err}`;
}

function valueError(value: string): string | undefined {
  const err = labelValueError(value);
  return err === undefined ? undefined : `label value "${value}": ${err}`;
}

function requirementError(req: string): string | undefined {
  if (req === '') return 'has an empty requirement (stray comma?)';
  const set = SET.exec(req);
  if (set) {
    const [, key = '', , list = ''] = set;
    const values = list.split(',').map((v) => v.trim());
    if (values.length === 1 && values[0] === '') return `"${req}": the set of values is empty`;
    return keyError(key) ?? values.map(valueError).find((e) => e !== undefined);
  }
  const cmp = COMPARE.exec(req);
  if (cmp) {
    const [, key = '', op = '', value = ''] = cmp;
    if ((op === '>' || op === '<') && !/^-?[0-9]+$/.test(value)) {
      return `"${req}": ${op} needs an integer`;
    }
    return keyError(key) ?? valueError(value);
  }
  const exists = EXISTS.exec(req);
  if (exists) return keyError(exists[1] ?? '');
  return `"${req}" is not a label selector requirement (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))`;
}

/** The selector for an explicit list of nodes, as the seed's `--nodes` writes it. */
export function hostnameSelector(nodes: readonly string[]): string {
  return `kubernetes.io/hostname in (${nodes.join(',')})`;
}
