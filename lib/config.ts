import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Node } from 'constructs';
import {
  envName,
  parseSettings,
  SETTING_NAMES,
  type SettingName,
  type Settings,
  SettingsError,
} from '../lambdas/core/settings.ts';
import { type FunctionGroup, GROUP_NAMES } from './function-groups.ts';

/**
 * Deployment options: CDK context keys that shape the infrastructure rather than the
 * product. The product settings (SETTINGS) are context keys too, with the same names.
 */
export interface DeploymentOptions {
  /** Retention of every function's log group and both access logs. */
  readonly logRetention: RetentionDays;
  /** Changing this value rotates the signing key on the next deploy. */
  readonly keyRotation: string;
  /** Alarm notifications go to this address when set. */
  readonly alarmEmail: string | undefined;
  /** Steady-state requests (HTTP) or messages (WebSocket) per second, per stage. */
  readonly throttleRatePerS: number;
  readonly throttleBurst: number;
  /** Create the account-level API Gateway CloudWatch role that WebSocket access logs need. */
  readonly apiGatewayAccountRole: boolean;
  /** Custom domain names, lower-cased, and the ACM certificate that covers them. */
  readonly domains: CustomDomains;
  /** Reserved concurrency of each function of a group; absent: the account's shared pool. */
  readonly reservedConcurrency: Readonly<Partial<Record<ConfigurableGroup, number>>>;
}

export interface CustomDomains {
  readonly ws: string | undefined;
  readonly http: string | undefined;
  readonly certificateArn: string | undefined;
}

/** The sweeper's concurrency is always 1 (its runs must never overlap): not a setting. */
export type ConfigurableGroup = Exclude<FunctionGroup, 'sweeper'>;

/** `passwords` -> `reservedConcurrencyPasswords`. */
export function concurrencyOption(
  group: ConfigurableGroup,
): `reservedConcurrency${Capitalize<ConfigurableGroup>}` {
  return `reservedConcurrency${group.charAt(0).toUpperCase()}${group.slice(1)}` as `reservedConcurrency${Capitalize<ConfigurableGroup>}`;
}

interface OptionSpec {
  readonly default: string;
  readonly doc: string;
}

/** Every deployment option, with its default and one line of documentation (docs/deploy.md copies these). */
export const DEPLOYMENT_OPTIONS = {
  logRetentionDays: { default: '30', doc: 'Days CloudWatch keeps function logs and access logs.' },
  keyRotation: {
    default: '1',
    doc: 'Any string; changing it rotates the signing key on the next deploy (see docs/operations.md).',
  },
  alarmEmail: {
    default: '',
    doc: 'E-mail address subscribed to the alarm topic (confirm the subscription).',
  },
  throttleRatePerS: { default: '500', doc: 'Stage throttle, steady requests or messages per second.' },
  throttleBurst: { default: '1000', doc: 'Stage throttle, burst.' },
  apiGatewayAccountRole: {
    default: 'true',
    doc: 'Set the account-wide API Gateway CloudWatch role that WebSocket access logs need; false if the account already has one.',
  },
  wsDomainName: {
    default: '',
    doc: 'Custom domain of the WebSocket API (wss://<wsDomainName>); needs certificateArn.',
  },
  httpDomainName: {
    default: '',
    doc: 'Custom domain of the HTTP API (https://<httpDomainName>), also the default token issuer; needs certificateArn.',
  },
  certificateArn: {
    default: '',
    doc: "ARN of an ACM certificate in the stack's region covering the custom domain names.",
  },
  reservedConcurrencyPasswords: {
    default: '',
    doc: 'Reserved concurrency of each of register and login (argon2, 1 GB); unset: shared pool.',
  },
  reservedConcurrencyHandshake: {
    default: '',
    doc: 'Reserved concurrency of each of the $connect authorizer and $connect; unset: shared pool.',
  },
  reservedConcurrencyMessages: {
    default: '',
    doc: 'Reserved concurrency of each of $default, $disconnect and the fan-out worker; unset: shared pool.',
  },
  reservedConcurrencyHttp: {
    default: '',
    doc: 'Reserved concurrency of each other HTTP function; unset: shared pool.',
  },
} as const satisfies Record<string, OptionSpec>;

export type DeploymentOptionName = keyof typeof DEPLOYMENT_OPTIONS;

const RETENTIONS = new Set<number>(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'),
);

/** A stack-supplied value for a setting the deployer left out (the token issuer and audience). */
export type SettingDefaults = Partial<Record<SettingName, string>>;

/**
 * Reads and checks every setting and deployment option from CDK context, reporting all
 * problems at once (synth stops with a message naming each bad key). `defaults` supplies
 * what the deployer left out, knowing the options (the issuer follows `httpDomainName`);
 * `region` is the stack's, when known at synth, to check the certificate's.
 */
export function readConfig(
  node: Node,
  defaults: (options: DeploymentOptions) => SettingDefaults,
  region?: string,
): { settings: Settings; options: DeploymentOptions } {
  const problems: string[] = [];
  const options = readOptions(node, problems, region);
  let settings: Settings | undefined;
  const given = defaults(options);
  try {
    settings = parseSettings((name) => contextValue(node, name) ?? given[name], 'aws');
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    problems.push(...err.problems);
  }
  if (settings && settings.sweepIntervalS % 60 !== 0) {
    problems.push(
      `sweepIntervalS (SWEEP_INTERVAL_S): must be a whole number of minutes on AWS (EventBridge schedules), got ${settings.sweepIntervalS}`,
    );
  }
  if (problems.length > 0 || !settings) throw new SettingsError(problems);
  return { settings, options };
}

const HOSTNAME = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate\/[A-Za-z0-9-]+$/;

/** Reads one option as text (its default when absent), or as a whole number in a range. */
interface OptionReader {
  readonly raw: (name: DeploymentOptionName) => string;
  readonly whole: (name: DeploymentOptionName, min: number, max: number) => number;
}

function optionReader(node: Node, problems: string[]): OptionReader {
  const raw = (name: DeploymentOptionName) =>
    String(contextValue(node, name) ?? DEPLOYMENT_OPTIONS[name].default).trim();
  const whole = (name: DeploymentOptionName, min: number, max: number) => {
    const text = raw(name);
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      problems.push(`${name}: must be a whole number between ${min} and ${max}, got ${JSON.stringify(text)}`);
    }
    return n;
  };
  return { raw, whole };
}

function readOptions(node: Node, problems: string[], region: string | undefined): DeploymentOptions {
  const reader = optionReader(node, problems);
  const { raw, whole } = reader;
  const retention = readRetention(reader, problems);
  const alarmEmail = raw('alarmEmail') || undefined;
  if (alarmEmail && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    problems.push(`alarmEmail: must be an e-mail address, got ${JSON.stringify(alarmEmail)}`);
  }
  const keyRotation = raw('keyRotation');
  if (keyRotation === '' || keyRotation.length > 128) problems.push('keyRotation: must be 1-128 characters');
  const accountRole = raw('apiGatewayAccountRole').toLowerCase();
  if (accountRole !== 'true' && accountRole !== 'false') {
    problems.push(`apiGatewayAccountRole: must be true or false, got ${JSON.stringify(accountRole)}`);
  }
  const domains = readDomains(reader, problems, region);
  const reservedConcurrency = readReservedConcurrency(reader);
  return Object.freeze({
    logRetention: retention,
    keyRotation,
    alarmEmail,
    throttleRatePerS: whole('throttleRatePerS', 1, 100_000),
    throttleBurst: whole('throttleBurst', 1, 100_000),
    apiGatewayAccountRole: accountRole === 'true',
    domains,
    reservedConcurrency,
  });
}

function readRetention({ whole }: OptionReader, problems: string[]): RetentionDays {
  const retention = whole('logRetentionDays', 1, 3653);
  if (!problems.some((p) => p.startsWith('logRetentionDays')) && !RETENTIONS.has(retention)) {
    problems.push(
      `logRetentionDays: must be one of CloudWatch's retention periods (${[...RETENTIONS].sort((a, b) => a - b).join(', ')}), got ${retention}`,
    );
  }
  return retention as RetentionDays;
}

/** The custom domain names and their certificate: both names or one, and a certificate of the stack's region. */
function readDomains({ raw }: OptionReader, problems: string[], region: string | undefined): CustomDomains {
  const domain = (name: 'wsDomainName' | 'httpDomainName') => {
    const text = raw(name).toLowerCase();
    if (text === '') return undefined;
    if (!HOSTNAME.test(text))
      problems.push(`${name}: must be a host name such as chat.example.com, got ${JSON.stringify(text)}`);
    return text;
  };
  const ws = domain('wsDomainName');
  const http = domain('httpDomainName');
  const certificateArn = raw('certificateArn') || undefined;
  if (ws && ws === http) problems.push('wsDomainName and httpDomainName: must be two different names');
  if ((ws || http) && !certificateArn) {
    problems.push(
      'certificateArn: required with wsDomainName or httpDomainName (an ACM certificate covering them)',
    );
  }
  if (certificateArn) {
    const match = CERTIFICATE_ARN.exec(certificateArn);
    if (!match) {
      problems.push(
        `certificateArn: must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>), got ${JSON.stringify(certificateArn)}`,
      );
    } else if (region && match[1] !== region) {
      problems.push(
        `certificateArn: must be in the stack's region ${region} (regional API Gateway domains), got ${match[1]}`,
      );
    }
    if (!ws && !http)
      problems.push('certificateArn: set wsDomainName or httpDomainName too, or leave it out');
  }
  return Object.freeze({ ws, http, certificateArn });
}

function readReservedConcurrency({ raw, whole }: OptionReader): DeploymentOptions['reservedConcurrency'] {
  const reservedConcurrency: Partial<Record<ConfigurableGroup, number>> = {};
  for (const group of GROUP_NAMES) {
    if (group === 'sweeper') continue;
    const name = concurrencyOption(group);
    if (raw(name) !== '') reservedConcurrency[group] = whole(name, 1, 10_000);
  }
  return Object.freeze(reservedConcurrency);
}

function contextValue(node: Node, name: string): unknown {
  const value: unknown = node.tryGetContext(name);
  return value === null ? undefined : value;
}

/**
 * The settings as Lambda environment variables, every one of them, in the form the
 * functions parse back (`settingsFromEnv`): defaults included, so the console shows what runs.
 */
export function settingsEnvironment(settings: Settings): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of SETTING_NAMES) {
    const value: unknown = settings[name];
    env[envName(name)] = Array.isArray(value) ? value.join(',') : value === undefined ? '' : String(value);
  }
  return env;
}
