// `npm run gen` (last step): copies the generated and data files of deploy/ into the Helm chart,
// which reads them with .Files.Get (a chart cannot read outside its folder). Copies, not
// symlinks: `helm package` and every Helm version take them as they are. The chart's templates
// are written by hand; test/integration/helm.test.ts checks that the chart renders what
// `kubectl kustomize deploy/` does, and that these copies are current.
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CHART_DIR = join(ROOT, 'deploy', 'helm', 'noma');

/** Chart file (under files/) ← file of deploy/. A missing optional source removes the copy. */
export const CHART_FILES: readonly { chart: string; source: string; optional?: boolean }[] = [
  { chart: 'crd.yaml', source: 'crd.yaml' },
  { chart: 'label-rules.yaml', source: 'label-rules.yaml' },
  { chart: 'agent-label-keys.yaml', source: 'agent-label-keys.yaml' },
  { chart: 'prometheus-rule.yaml', source: 'monitoring/prometheus-rule.yaml', optional: true },
  { chart: 'grafana-dashboard.json', source: 'monitoring/grafana-dashboard.json', optional: true },
];

export function chartFilePath(name: string): string {
  return join(CHART_DIR, 'files', name);
}

export function sourcePath(name: string): string {
  return join(ROOT, 'deploy', name);
}

function main(): void {
  mkdirSync(join(CHART_DIR, 'files'), { recursive: true });
  for (const { chart, source, optional } of CHART_FILES) {
    if (optional === true && !existsSync(sourcePath(source))) {
      rmSync(chartFilePath(chart), { force: true });
      continue;
    }
    copyFileSync(sourcePath(source), chartFilePath(chart));
    console.log(`wrote ${chartFilePath(chart)}`);
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main();
}
