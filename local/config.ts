import { resolve } from 'node:path';
import {
  envName,
  parseSettings,
  SETTING_NAMES,
  type Settings,
  SettingsError,
} from '../lambdas/core/settings.ts';

/** Settings of the local system: the product's settings plus where it listens and keeps data. */
export interface LocalConfig {
  readonly settings: Settings;
  readonly host: string;
  readonly port: number;
  readonly wsPort: number;
  /** Absolute data folder, or undefined for `:memory:`. */
  readonly dataDir: string | undefined;
  /** How `npm start` prints audit lines: JSON, or one readable line each; undefined picks by the terminal. */
  readonly logFormat: 'json' | 'pretty' | undefined;
}

/** A start-up problem of the local system, in one line that names the setting to change. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The environment variables of the local system besides the product's settings. */
export const LOCAL_VARIABLES = ['PORT', 'WS_PORT', 'DATA_DIR', 'HOST', 'LOG_FORMAT'] as const;

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
  const host = env.HOST || '127.0.0.1';
  const logFormat = env.LOG_FORMAT || undefined;
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'pretty')
    problems.push(`LOG_FORMAT: must be json or pretty, got ${JSON.stringify(logFormat)}`);
  if (problems.length > 0 || !settings) throw new SettingsError(problems);
  return {
    settings,
    host,
    port: p,
    wsPort,
    dataDir: dataRaw === ':memory:' ? undefined : resolve(dataRaw),
    logFormat: logFormat as LocalConfig['logFormat'],
  };
}

/** Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`, giving up past `max`. */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [
    i,
    ...Array<number>(b.length).fill(0),
  ]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    const prev = d[i - 1] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      row[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/**
 * Environment variables that look like a misspelt setting (`RATE_LIMT_MAX`), each with the
 * setting it is one typo away from: otherwise the default would apply without a word.
 */
export function misspeltVariables(env: NodeJS.ProcessEnv): { name: string; meant: string }[] {
  const known = [...SETTING_NAMES.map(envName), ...LOCAL_VARIABLES];
  const found: { name: string; meant: string }[] = [];
  for (const name of Object.keys(env)) {
    if (!/^[A-Z][A-Z0-9_]{2,}$/.test(name) || known.includes(name)) continue;
    // Short names are one edit apart by chance (HOME, HOST): allow two edits only on long ones.
    const max = name.length >= 10 ? 2 : 1;
    const meant = known.find((k) => distance(name, k, max) <= max);
    if (meant) found.push({ name, meant });
  }
  return found;
}
