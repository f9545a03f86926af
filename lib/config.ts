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
} as const satisfies Record<string, OptionSpec>;

export type DeploymentOptionName = keyof typeof DEPLOYMENT_OPTIONS;

const RETENTIONS = new Set<number>(
  Object.values(RetentionDays).filter((v): v is number => typeof v === 'number'),
);

/** A stack-supplied value for a setting the deployer left out (the token issuer and audience). */
export type SettingDefaults = Partial<Record<SettingName, string>>;

/**
 * Reads and checks every setting and deployment option from CDK context, reporting all
 * problems at once (synth stops with a message naming each bad key).
 */
export function readConfig(
  node: Node,
  defaults: SettingDefaults,
): { settings: Settings; options: DeploymentOptions } {
  const problems: string[] = [];
  let settings: Settings | undefined;
  try {
    settings = parseSettings((name) => contextValue(node, name) ?? defaults[name], 'aws');
  } catch (err) {
    if (!(err instanceof SettingsError)) throw err;
    problems.push(...err.problems);
  }
  if (settings && settings.sweepIntervalS % 60 !== 0) {
    problems.push(
      `sweepIntervalS (SWEEP_INTERVAL_S): must be a whole number of minutes on AWS (EventBridge schedules), got ${settings.sweepIntervalS}`,
    );
  }

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
  const retention = whole('logRetentionDays', 1, 3653);
  if (!problems.some((p) => p.startsWith('logRetentionDays')) && !RETENTIONS.has(retention)) {
    problems.push(
      `logRetentionDays: must be one of CloudWatch's retention periods (${[...RETENTIONS].sort((a, b) => a - b).join(', ')}), got ${retention}`,
    );
  }
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
  const options: DeploymentOptions = {
    logRetention: retention as RetentionDays,
    keyRotation,
    alarmEmail,
    throttleRatePerS: whole('throttleRatePerS', 1, 100_000),
    throttleBurst: whole('throttleBurst', 1, 100_000),
    apiGatewayAccountRole: accountRole === 'true',
  };

  if (problems.length > 0 || !settings) throw new SettingsError(problems);
  return { settings, options: Object.freeze(options) };
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
