// Pure: an equality-based label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated,
// all must hold), matched in memory against the leader's one Node cache, so that scoping the
// downtime handling to some nodes costs no second informer.

export type LabelPredicate = (labels: Readonly<Record<string, string>> | undefined) => boolean;

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** The selector's predicate; undefined when it does not parse. An empty selector selects all. */
export function parseSelector(text: string): LabelPredicate | undefined {
  const terms: LabelPredicate[] = [];
  for (const raw of text.split(',')) {
    const term = raw.trim();
    if (term === '') continue;
    const m = /^([^!=]+?)\s*(!=|==|=)\s*(.*)$/.exec(term);
    if (m !== null) {
      const [, key = '', op, value = ''] = m;
      if (!KEY.test(key) || !VALUE.test(value)) return undefined;
      terms.push(op === '!=' ? (l) => l?.[key] !== value : (l) => l?.[key] === value);
      continue;
    }
    const absent = term.startsWith('!');
    const key = absent ? term.slice(1).trim() : term;
    if (!KEY.test(key)) return undefined;
    terms.push(absent ? (l) => l?.[key] === undefined : (l) => l?.[key] !== undefined);
  }
  return (labels) => terms.every((t) => t(labels));
}
