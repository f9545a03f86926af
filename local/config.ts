import { resolve } from 'node:path';
import { envName, parseSettings, type Settings, SettingsError } from '../lambdas/core/settings.ts';

/** Settings of the local system: the product's settings plus where it listens and keeps data. */
export interface LocalConfig {
  readonly settings: Settings;
  readonly host: string;
  readonly port: number;
  readonly wsPort: number;
  /** Absolute data folder, or undefined for `:memory:`. */
  readonly dataDir: string | undefined;
}

function port(name: string, raw: string | undefined, fallback: number, problems: string[]): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > 65535) {
    problems.push(`${name}: must be a port number 0-65535, got ${JSON.stringify(raw)}`);
    return fallback;
  }
  return n;
}

/**
 * The origins allowed when `ALLOWED_ORIGINS` is unset: the demo page's own, on `PORT`. A
 * system moved to another port (3000 is often some other dev server's) keeps working in
 * the browser. `PORT=0` (any free port) keeps the documented `:3000` pair, since the
 * port is not known before settings are parsed.
 */
export function defaultOrigins(httpPort: number): string {
  const p = httpPort === 0 ? 3000 : httpPort;
  return `http://localhost:${p},http://127.0.0.1:${p}`;
}

/** Reads every local setting from the environment, reporting all problems together. */
export function localConfig(env: NodeJS.ProcessEnv): LocalConfig {
  const problems: string[] = [];
  const p = port('PORT', env.PORT, 3000, problems);
  const wsPort = port('WS_PORT', env.WS_PORT, 3001, problems);
  let settings: Settings | undefined;
  try {
    settings = parseSettings((name) => {
      const value = env[envName(name)];
      return name === 'allowedOrigins' && value === undefined ? defaultOrigins(p) : value;
    }, 'local');
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    problems.unshift(...err.problems);
  }
  if (p !== 0 && p === wsPort) problems.push('WS_PORT: must differ from PORT');
  const dataRaw = env.DATA_DIR ?? '.data';
  if (dataRaw.trim() === '') problems.push('DATA_DIR: must be a folder or :memory:');
  const host = env.HOST ?? '127.0.0.1';
  if (problems.length > 0 || !settings) throw new SettingsError(problems);
  return { settings, host, port: p, wsPort, dataDir: dataRaw === ':memory:' ? undefined : resolve(dataRaw) };
}
