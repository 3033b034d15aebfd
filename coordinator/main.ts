#!/usr/bin/env node
// noma coordinator: watches NodeMaintenance resources and takes nodes through maintenance.
import { createLogger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';

const log = createLogger('noma-coordinator');
log.info({ version: VERSION }, 'noma coordinator starting');
