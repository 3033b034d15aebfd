export * from './nodemaintenance.js';
export * from './validate.js';
export { nodeMaintenanceCRD } from './crd.js';
