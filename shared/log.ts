import { pino, type Logger, type LevelWithSilent } from 'pino';

/**
 * The one logger of a noma process. Components take a child (`log.child({ component: 'drain' })`)
 * so every line says where it came from. JSON to stdout, level from NOMA_LOG_LEVEL.
 */
export function createLogger(name: string, level?: LevelWithSilent): Logger {
  const fromEnv = process.env['NOMA_LOG_LEVEL'] as LevelWithSilent | undefined;
  return pino({ name, level: level ?? fromEnv ?? 'info', base: { name } });
}

export type { Logger };
