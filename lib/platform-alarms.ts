/**
 * Alarms on what the platform itself counts (Lambda, DynamoDB), so that timeouts,
 * out-of-memory kills and crashes raise them whatever the code managed to log.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type { TableKey } from '../lambdas/core/tables.ts';
import type { FunctionSpec } from '../lambdas/functions.ts';
import { FUNCTION_GROUPS, type FunctionGroup, GROUP_NAMES } from './function-groups.ts';
import type { HandlerFunction } from './handler-function.ts';
import { pascal } from './storage.ts';

/** A CloudWatch alarm may read at most 10 metrics (a hard limit): larger sets are split over several alarms. */
export const MAX_ALARM_METRICS = 10;

/** A function's slowest run over 5 minutes at this share of its timeout raises the alarm. */
export const NEAR_TIMEOUT_SHARE = 0.8;

/** One product function with its manifest entry and group. */
export interface GroupedFunction {
  readonly spec: FunctionSpec;
  readonly fn: HandlerFunction;
  readonly group: FunctionGroup;
}

export interface AlarmSpec {
  readonly id: string;
  readonly description: string;
  readonly metric: cloudwatch.IMetric;
  readonly threshold: number;
}

/**
 * The authorizer answers a bad token with 401 by throwing `Unauthorized`, which Lambda counts
 * in `Errors` like a crash and the runtime logs as an `ERROR` line: this metric counts those
 * lines, so that the authorizer's real failures are `Errors` minus them.
 */
export const DELIBERATE_401_METRIC = 'AuthorizerUnauthorized';

/** Does this function answer 401 by throwing (the `$connect` authorizer)? */
export function throwsUnauthorized(spec: FunctionSpec): boolean {
  return spec.wsRoutes?.includes('authorizer') ?? false;
}

/** Splits a list so that no part weighs more than MAX_ALARM_METRICS metrics. */
export function chunkByMetrics<T>(items: readonly T[], weight: (item: T) => number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let used = 0;
  for (const item of items) {
    const w = weight(item);
    if (current.length > 0 && used + w > MAX_ALARM_METRICS) {
      chunks.push(current);
      current = [];
      used = 0;
    }
    current.push(item);
    used += w;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

const numbered = (id: string, index: number, count: number) => (count > 1 ? `${id}${index + 1}` : id);
const FIVE_MINUTES = Duration.minutes(5);

/**
 * Per function group, from Lambda's own metrics (what the platform writes, so timeouts,
 * out-of-memory kills and crashes count, whatever the log level): errors, throttles, and a
 * slowest run near the timeout.
 */
export function lambdaAlarms(namespace: string, groups: readonly GroupedFunction[]): AlarmSpec[] {
  return GROUP_NAMES.flatMap((group) => {
    const members = groups.filter((g) => g.group === group);
    if (members.length === 0) return [];
    return [
      ...errorAlarms(namespace, group, members),
      ...throttleAlarms(group, members),
      ...nearTimeoutAlarms(group, members),
    ];
  });
}

const names = (part: readonly GroupedFunction[]) => part.map((m) => m.spec.name).join(', ');

/** Failed invocations of a group, the authorizer's deliberate 401s subtracted. */
function errorAlarms(
  namespace: string,
  group: FunctionGroup,
  members: readonly GroupedFunction[],
): AlarmSpec[] {
  const { title, description } = FUNCTION_GROUPS[group];
  const parts = chunkByMetrics(members, (m) => (throwsUnauthorized(m.spec) ? 2 : 1));
  return parts.map((part, index) => {
    const usingMetrics: Record<string, cloudwatch.IMetric> = {};
    const terms = part.map((m, i) => {
      usingMetrics[`e${i}`] = m.fn.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' });
      if (!throwsUnauthorized(m.spec)) return `FILL(e${i}, 0)`;
      usingMetrics[`u${i}`] = new cloudwatch.Metric({
        namespace,
        metricName: DELIBERATE_401_METRIC,
        statistic: 'Sum',
        period: FIVE_MINUTES,
      });
      return `(FILL(e${i}, 0) - FILL(u${i}, 0))`;
    });
    return {
      id: numbered(`${title}Errors`, index, parts.length),
      description:
        `Invocations of ${description} (${names(part)}) that failed: an uncaught error, a timeout or an ` +
        'out-of-memory kill, as Lambda counts them (the authorizer\'s deliberate 401s excluded). Run the "errors" query.',
      metric: new cloudwatch.MathExpression({
        expression: terms.join(' + '),
        usingMetrics,
        period: FIVE_MINUTES,
        label: `${group} errors`,
      }),
      threshold: 1,
    };
  });
}

/** Invocations of a group refused for lack of concurrency. */
function throttleAlarms(group: FunctionGroup, members: readonly GroupedFunction[]): AlarmSpec[] {
  // The sweeper is held to one run at a time on purpose: a run that waits too long for the
  // slot ends in the on-failure queue (SweepFailures), so its throttles alone are no alarm.
  if (group === 'sweeper') return [];
  const { title, description } = FUNCTION_GROUPS[group];
  const parts = chunkByMetrics(members, () => 1);
  return parts.map((part, index) => ({
    id: numbered(`${title}Throttles`, index, parts.length),
    description:
      `Invocations of ${description} (${names(part)}) refused for lack of concurrency: the account's pool ` +
      'or the reserved concurrency is exhausted. See docs/operations.md, "Concurrency".',
    metric: sumOf(
      part.map((m) => m.fn.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' })),
      `${group} throttles`,
    ),
    threshold: 1,
  }));
}

/** A group's slowest run near its timeout. One threshold per alarm: functions of one timeout together. */
function nearTimeoutAlarms(group: FunctionGroup, members: readonly GroupedFunction[]): AlarmSpec[] {
  const { title, description } = FUNCTION_GROUPS[group];
  const timeouts = [...new Set(members.map((m) => m.spec.timeoutS ?? 10))].sort((a, b) => a - b);
  const parts = timeouts.flatMap((timeoutS) =>
    chunkByMetrics(
      members.filter((m) => (m.spec.timeoutS ?? 10) === timeoutS),
      () => 1,
    ).map((part) => ({ part, timeoutS })),
  );
  return parts.map(({ part, timeoutS }, index) => {
    const durations = part.map((m) => m.fn.metricDuration({ period: FIVE_MINUTES, statistic: 'Maximum' }));
    const usingMetrics = Object.fromEntries(durations.map((d, i) => [`d${i}`, d]));
    return {
      id: numbered(`${title}NearTimeout`, index, parts.length),
      description:
        `A run of ${description} (${names(part)}) took ${NEAR_TIMEOUT_SHARE * 100}% or more of its ${timeoutS} s ` +
        'timeout: a slow dependency or a cold start with too little memory; timeouts follow.',
      metric:
        durations.length === 1 && durations[0]
          ? durations[0]
          : new cloudwatch.MathExpression({
              expression: `MAX([${Object.keys(usingMetrics).join(', ')}])`,
              usingMetrics,
              period: FIVE_MINUTES,
              label: `${group} slowest run (ms)`,
            }),
      threshold: Math.round(timeoutS * 1000 * NEAR_TIMEOUT_SHARE),
    };
  });
}

/** DynamoDB's throttled requests and its own failures (`SystemErrors`), per table, for each operation in use. */
export function tableAlarms(
  tables: Readonly<Record<TableKey, dynamodb.ITable>>,
  operations: Partial<Record<TableKey, readonly string[]>>,
): AlarmSpec[] {
  const out: AlarmSpec[] = [];
  for (const [key, table] of Object.entries(tables) as [TableKey, dynamodb.ITable][]) {
    const metric = (metricName: string, dimensions: Record<string, string> = {}) =>
      new cloudwatch.Metric({
        namespace: 'AWS/DynamoDB',
        metricName,
        dimensionsMap: { TableName: table.tableName, ...dimensions },
        statistic: 'Sum',
        period: FIVE_MINUTES,
      });
    // Both exist per operation only. ThrottledRequests counts a request refused for the table or
    // any of its indexes (a throttled index throttles the table's writes).
    const metrics = (operations[key] ?? []).flatMap((operation) => [
      metric('ThrottledRequests', { Operation: operation }),
      metric('SystemErrors', { Operation: operation }),
    ]);
    const parts = chunkByMetrics(metrics, () => 1);
    parts.forEach((part, index) => {
      out.push({
        id: numbered(`${pascal(key)}TableErrors`, index, parts.length),
        description:
          `The ${key} table throttled requests or failed them (SystemErrors). Throttling on demand: a hot key or ` +
          'traffic above twice the previous peak; system errors are on the DynamoDB side (the SDK retries). ' +
          'See the dashboard and the "errors" query.',
        metric: sumOf(part, `${key} throttles and system errors`),
        threshold: 1,
      });
    });
  }
  return out;
}

function sumOf(metrics: readonly cloudwatch.IMetric[], label: string): cloudwatch.IMetric {
  const [only] = metrics;
  if (metrics.length === 1 && only) return only;
  const usingMetrics = Object.fromEntries(metrics.map((m, i) => [`m${i}`, m]));
  return new cloudwatch.MathExpression({
    expression: Object.keys(usingMetrics)
      .map((id) => `FILL(${id}, 0)`)
      .join(' + '),
    usingMetrics,
    period: FIVE_MINUTES,
    label,
  });
}
