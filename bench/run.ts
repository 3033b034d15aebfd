// npm run bench -- <name> [args…]: runs bench/<name>.ts, whose default export does the work.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
  .map((f) => f.slice(0, -'.ts'.length));
const [name, ...args] = process.argv.slice(2);

if (name === undefined || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name> [args]\navailable: ${available.join(', ')}`);
  process.exit(2);
}
const mod = (await import(new URL(`./${name}.ts`, import.meta.url).href)) as {
  default: (args: string[]) => Promise<void>;
};
try {
  await mod.default(args);
} catch (err) {
  console.error(`bench ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
