// `npm run gen` (part of it): deploy/monitoring/prometheus-rule.yaml from rules.yaml.
import { writePrometheusRule, PROMETHEUS_RULE_FILE } from './prometheus-rule.js';

await writePrometheusRule();
console.log(`wrote ${PROMETHEUS_RULE_FILE}`);
