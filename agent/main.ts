#!/usr/bin/env node
// noma agent: one per node (DaemonSet). Discovers GPUs, keeps the Node's labels, runs
// node-local maintenance actions for the coordinator.
import { createLogger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';

const log = createLogger('noma-agent');
log.info({ version: VERSION }, 'noma agent starting');
