import { normalizeOrigin } from './origin.ts';

/** Every setting of the product, parsed and checked once. */
export interface Settings {
  readonly allowedOrigins: readonly string[];
  readonly allowMissingOrigin: boolean;
  readonly accessTokenTtlS: number;
  readonly refreshTokenTtlS: number;
  readonly rateLimitMax: number;
  readonly rateLimitWindowS: number;
  readonly blockAfterViolations: number;
  readonly blockDurationS: number;
  readonly maxMessageBytes: number;
  readonly sweepIntervalS: number;
  readonly loginMaxFailures: number;
  readonly loginMaxFailuresPerIp: number;
  readonly loginFailureWindowS: number;
  readonly registerMaxPerIp: number;
  readonly ipBlockAfterFailures: number;
  readonly clockSkewS: number;
  readonly messageEncryption: boolean;
  readonly oidcIssuer: string | undefined;
  readonly oidcAudience: string | undefined;
  readonly maxConnectionsPerUser: number;
  readonly historyTtlS: number;
  readonly maxRecoveryMessages: number;
  /** `iss` of our access tokens; unique per deployment so tokens never cross deployments. */
  readonly tokenIssuer: string;
  /** `aud` of our access tokens. */
  readonly tokenAudience: string;
}

export type SettingName = keyof Settings;
export type Profile = 'local' | 'aws';

/** Thrown when settings are bad; `problems` names every bad setting at once. */
export class SettingsError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid settings:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SettingsError';
    this.problems = problems;
  }
}

type Parser = (raw: string) => { value: unknown } | { problem: string };

interface SettingSpec {
  parse: Parser;
  /** Default per profile; undefined means "not set". */
  local: string | undefined;
  aws: string | undefined;
  doc: string;
}

const int =
  (min: number, max: number): Parser =>
  (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) return { problem: `must be a whole number, got ${JSON.stringify(raw)}` };
    const n = Number(raw.trim());
    if (n < min || n > max) return { problem: `must be between ${min} and ${max}, got ${n}` };
    return { value: n };
  };

const bool: Parser = (raw) => {
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) return { value: true };
  if (['false', '0', 'no', 'off', ''].includes(v)) return { value: false };
  return { problem: `must be true or false, got ${JSON.stringify(raw)}` };
};

const origins: Parser = (raw) => {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const out: string[] = [];
  for (const item of items) {
    const n = normalizeOrigin(item);
    if (!n)
      return { problem: `${JSON.stringify(item)} is not an origin like https://app.example.com[:port]` };
    if (!out.includes(n)) out.push(n);
  }
  return { value: Object.freeze(out) };
};

const optionalUrl: Parser = (raw) => {
  const v = raw.trim();
  if (v === '') return { value: undefined };
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return { problem: `must be an https URL, got ${JSON.stringify(raw)}` };
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    return { problem: 'must use https (http is accepted only on loopback)' };
  }
  return { value: v.replace(/\/+$/, '') };
};

const optionalText: Parser = (raw) => ({ value: raw.trim() === '' ? undefined : raw.trim() });
const text: Parser = (raw) =>
  raw.trim() === '' || raw.length > 256 ? { problem: 'must be 1-256 characters' } : { value: raw.trim() };

const DAY = 86_400;

/** The settings table: one name each, the same for CDK context and (in SCREAMING_SNAKE_CASE) the environment. */
export const SETTINGS: Readonly<Record<SettingName, SettingSpec>> = {
  allowedOrigins: {
    parse: origins,
    local: 'http://localhost:3000,http://127.0.0.1:3000',
    aws: '',
    doc: 'Comma-separated origins allowed to open WebSockets.',
  },
  allowMissingOrigin: {
    parse: bool,
    local: 'false',
    aws: 'false',
    doc: 'Accept handshakes without an Origin header (non-browser clients).',
  },
  accessTokenTtlS: { parse: int(30, DAY), local: '900', aws: '900', doc: 'Access token lifetime, seconds.' },
  refreshTokenTtlS: {
    parse: int(60, 90 * DAY),
    local: String(7 * DAY),
    aws: String(7 * DAY),
    doc: 'Refresh token lifetime, seconds.',
  },
  rateLimitMax: { parse: int(1, 100_000), local: '10', aws: '10', doc: 'Frames per user per window.' },
  rateLimitWindowS: { parse: int(1, DAY), local: '60', aws: '60', doc: 'Rate-limit window, seconds.' },
  blockAfterViolations: {
    parse: int(1, 1_000_000),
    local: '20',
    aws: '20',
    doc: 'Refused frames in one window after which the user is blocked.',
  },
  blockDurationS: {
    parse: int(1, 365 * DAY),
    local: '3600',
    aws: '3600',
    doc: 'Automatic block length, seconds.',
  },
  maxMessageBytes: {
    parse: int(64, 32 * 1024),
    local: '8192',
    aws: '8192',
    doc: 'Largest accepted client frame, bytes (API Gateway caps frames at 32 KB).',
  },
  sweepIntervalS: { parse: int(1, DAY), local: '60', aws: '300', doc: 'Sweeper period, seconds.' },
  loginMaxFailures: {
    parse: int(1, 10_000),
    local: '5',
    aws: '5',
    doc: 'Failed logins per username per window.',
  },
  loginMaxFailuresPerIp: {
    parse: int(1, 1_000_000),
    local: '50',
    aws: '50',
    doc: 'Failed logins per IP per window.',
  },
  loginFailureWindowS: {
    parse: int(1, DAY),
    local: '900',
    aws: '900',
    doc: 'Login failure window, seconds.',
  },
  registerMaxPerIp: {
    parse: int(1, 1_000_000),
    local: '20',
    aws: '20',
    doc: 'Registrations per IP per login failure window; more get 429.',
  },
  ipBlockAfterFailures: {
    parse: int(0, 1_000_000),
    local: '0',
    aws: '0',
    doc: 'Failed logins and refused handshakes from one IP in a window before the IP is blocked; 0 is off.',
  },
  clockSkewS: {
    parse: int(0, 300),
    local: '30',
    aws: '30',
    doc: 'Clock skew allowed when checking tokens, seconds.',
  },
  messageEncryption: {
    parse: bool,
    local: 'false',
    aws: 'false',
    doc: 'Hand out per-session JWE message keys.',
  },
  oidcIssuer: {
    parse: optionalUrl,
    local: '',
    aws: '',
    doc: 'OIDC issuer accepted by /auth/token-exchange.',
  },
  oidcAudience: { parse: optionalText, local: '', aws: '', doc: 'Expected `aud` of exchanged ID tokens.' },
  maxConnectionsPerUser: {
    parse: int(1, 1000),
    local: '10',
    aws: '10',
    doc: 'Open sockets per user; a handshake over it gets 403.',
  },
  historyTtlS: {
    parse: int(0, 365 * DAY),
    local: String(DAY),
    aws: String(DAY),
    doc: 'Room history lifetime, seconds.',
  },
  maxRecoveryMessages: {
    parse: int(1, 1000),
    local: '200',
    aws: '200',
    doc: 'Most messages a join with `since` restores; more missed gets `recovered: false`.',
  },
  tokenIssuer: {
    parse: text,
    local: 'urn:jwt-realtime:local',
    aws: undefined,
    doc: 'Issuer of access tokens (set per deployment by the stack).',
  },
  tokenAudience: {
    parse: text,
    local: 'urn:jwt-realtime:local:clients',
    aws: undefined,
    doc: 'Audience of access tokens (set per deployment by the stack).',
  },
};

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

/** `rateLimitMax` -> `RATE_LIMIT_MAX`. */
export function envName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/**
 * Parses every setting from a lookup (environment variables, CDK context), applying the
 * profile's defaults. Reports every problem at once; the result is frozen.
 *
 * @example parseSettings((name) => process.env[envName(name)], 'local')
 */
export function parseSettings(lookup: (name: SettingName) => unknown, profile: Profile): Settings {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = SETTINGS[name];
    const given = lookup(name);
    const raw = given === undefined || given === null ? spec[profile] : String(given);
    if (raw === undefined) {
      problems.push(`${name} (${envName(name)}): is required`);
      continue;
    }
    const result = spec.parse(raw);
    if ('problem' in result) problems.push(`${name} (${envName(name)}): ${result.problem}`);
    else out[name] = result.value;
  }
  if (problems.length === 0) {
    const s = out as unknown as Settings;
    if (s.oidcIssuer && !s.oidcAudience)
      problems.push('oidcAudience (OIDC_AUDIENCE): is required with oidcIssuer');
    if (s.allowedOrigins.length === 0 && !s.allowMissingOrigin) {
      problems.push('allowedOrigins (ALLOWED_ORIGINS): list at least one origin, or set allowMissingOrigin');
    }
  }
  if (problems.length > 0) throw new SettingsError(problems);
  return Object.freeze(out) as unknown as Settings;
}

/** Settings from environment variables (`npm start`, and the Lambda environment on AWS). */
export function settingsFromEnv(env: NodeJS.ProcessEnv, profile: Profile): Settings {
  return parseSettings((name) => env[envName(name)], profile);
}
