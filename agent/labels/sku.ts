/** Brand words that say nothing about which GPU it is. */
const BRAND_WORDS = new Set(['nvidia', 'geforce', 'tesla', 'quadro']);
/** Suffixes that make a different product (an RTX 4070 Ti is not an RTX 4070). */
const VARIANT_WORDS = new Set(['ti', 'super']);

export interface SkuAlias {
  /** Glob over the product name as nvidia-smi prints it; `*` matches anything. Case-insensitive. */
  readonly product: string;
  readonly sku: string;
}

export function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * The short model name used in `gpu.<sku>` labels: "NVIDIA GeForce RTX 5070" → `rtx5070`,
 * "NVIDIA H100 80GB HBM3" → `h100`, "NVIDIA A100-SXM4-40GB" → `a100`, "Tesla V100-SXM2-16GB" →
 * `v100`. Memory size and form factor are left out on purpose: they have their own labels, and
 * workloads select on the model. Aliases (first match wins) override the derivation.
 */
export function skuOf(product: string, aliases: readonly SkuAlias[] = []): string {
  const alias = aliases.find((a) => globToRegExp(a.product).test(product));
  if (alias !== undefined) return alias.sku;
  const tokens = product
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((t) => t !== '' && !BRAND_WORDS.has(t));
  let i = 0;
  let sku = '';
  // Series words without a number ("rtx", "gtx", "titan", "pro") belong to the model name.
  while (i < tokens.length && !/\d/.test(sku)) sku += tokens[i++] ?? '';
  const next = tokens[i];
  if (next !== undefined && VARIANT_WORDS.has(next)) sku += next;
  return sku === '' ? 'unknown' : sku;
}
