// `npm run gen`: writes deploy/crd.yaml from the schema in shared/api.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { renderCRD } from './api/crd-yaml.js';

const target = fileURLToPath(new URL('../deploy/crd.yaml', import.meta.url));
await writeFile(target, renderCRD());
console.log(`wrote ${target}`);
