import { Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { TABLE_KEYS, TABLES, type TableKey, tableEnvName } from '../lambdas/core/tables.ts';
import type { FunctionSpec } from '../lambdas/functions.ts';
import type { DeploymentOptions } from './config.ts';
import type { FanoutQueue } from './fanout-queue.ts';
import { functionGroup } from './function-groups.ts';
import { HandlerFunction } from './handler-function.ts';
import type { SigningKeys } from './signing-keys.ts';
import { pascal } from './storage.ts';

/** The WebSocket stage whose `@connections` a function may manage. */
export interface ConnectionsTarget {
  readonly apiId: string;
  readonly stageName: string;
  /** `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}` */
  readonly callbackUrl: string;
}

export interface ProductFunctionsProps {
  readonly specs: readonly FunctionSpec[];
  readonly entryFor: (spec: FunctionSpec) => string;
  readonly tables: Readonly<Record<TableKey, dynamodb.ITable>>;
  readonly keys: SigningKeys;
  readonly connections: ConnectionsTarget;
  /** The fan-out queue of big rooms, for the functions whose spec names `fanoutQueue`. */
  readonly fanout: FanoutQueue;
  /** Every product setting as environment variables. */
  readonly settingsEnv: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
  readonly reservedConcurrency: DeploymentOptions['reservedConcurrency'];
}

/** Sweeps must never overlap: a run still going when the next is due makes that one wait, then fail. */
export const SWEEPER_CONCURRENCY = 1;

/**
 * One function per manifest entry, each granted exactly what its spec lists: the DynamoDB
 * actions per table (and its indexes where it queries), the private key set only for
 * `sign`, the public one for `verify`, and `@connections` of this stage only where it
 * posts or closes. Environment and grant come from the same spec, so they cannot drift.
 */
export class ProductFunctions extends Construct {
  readonly byName: ReadonlyMap<string, HandlerFunction>;

  constructor(scope: Construct, id: string, props: ProductFunctionsProps) {
    super(scope, id);
    checkManifest(props.specs);
    const tableEnv: Record<string, string> = {};
    for (const key of TABLE_KEYS) tableEnv[tableEnvName(key)] = props.tables[key].tableName;

    const byName = new Map<string, HandlerFunction>();
    for (const spec of props.specs) {
      const env: Record<string, string> = { ...props.settingsEnv, ...tableEnv };
      if (spec.keys === 'sign') env.SIGNING_KEYS_SECRET_ARN = props.keys.privateSecret.secretArn;
      if (spec.keys === 'verify') env.PUBLIC_KEYS_SECRET_ARN = props.keys.publicSecret.secretArn;
      if (spec.manageConnections) env.WS_MANAGEMENT_ENDPOINT = props.connections.callbackUrl;

      const group = functionGroup(spec);
      const fn = new HandlerFunction(this, pascal(spec.name), {
        entry: props.entryFor(spec),
        description: `${spec.name}: ${spec.description}`,
        memoryMb: spec.memoryMb,
        timeoutS: spec.timeoutS,
        reservedConcurrency: group === 'sweeper' ? SWEEPER_CONCURRENCY : props.reservedConcurrency[group],
        environment: env,
        logRetention: props.logRetention,
      });
      grantTables(fn, spec, props.tables);
      if (spec.keys !== 'none') {
        const secret = spec.keys === 'sign' ? props.keys.privateSecret : props.keys.publicSecret;
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['secretsmanager:GetSecretValue'],
            resources: [secret.secretArn],
          }),
        );
        // The secrets hold CloudFormation's placeholder until the key resource has run.
        fn.node.addDependency(props.keys.resource);
      }
      if (spec.manageConnections) grantManageConnections(fn, props.connections);
      if (spec.fanoutQueue) props.fanout.grantSend(fn);
      if (spec.fanoutQueue === 'work') props.fanout.consumeWith(fn);
      byName.set(spec.name, fn);
    }
    this.byName = byName;
  }

  get all(): HandlerFunction[] {
    return [...this.byName.values()];
  }

  get(name: string): HandlerFunction {
    const fn = this.byName.get(name);
    if (!fn) throw new Error(`no function named ${name}`);
    return fn;
  }
}

function grantTables(
  fn: HandlerFunction,
  spec: FunctionSpec,
  tables: Readonly<Record<TableKey, dynamodb.ITable>>,
): void {
  for (const key of TABLE_KEYS) {
    const actions = spec.tables[key];
    if (!actions || actions.length === 0) continue;
    const table = tables[key];
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [...new Set(actions)].map((a) => `dynamodb:${a}`),
        resources: [table.tableArn],
      }),
    );
    const indexes = TABLES[key].indexes;
    if (actions.includes('Query') && indexes.length > 0) {
      // Query alone reaches the table's indexes, each by name: no wildcard, and no other action.
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['dynamodb:Query'],
          resources: indexes.map((index) => `${table.tableArn}/index/${index.indexName}`),
        }),
      );
    }
  }
}

function grantManageConnections(fn: HandlerFunction, target: ConnectionsTarget): void {
  const stack = Stack.of(fn);
  // POST sends, GET reads a connection, DELETE closes: this stage of this API only.
  const resources = ['POST', 'GET', 'DELETE'].map((method) =>
    stack.formatArn({
      service: 'execute-api',
      resource: target.apiId,
      resourceName: `${target.stageName}/${method}/@connections/*`,
    }),
  );
  fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['execute-api:ManageConnections'], resources }));
}

/** Refuses a manifest that would deploy something ambiguous: two owners of one route, or twin names. */
export function checkManifest(specs: readonly FunctionSpec[]): void {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const claim = (what: string, owner: string) => {
    const other = seen.get(what);
    if (other) problems.push(`${what} is served by both ${other} and ${owner}`);
    else seen.set(what, owner);
  };
  for (const spec of specs) {
    if (!/^[a-z][a-z0-9-]*$/.test(spec.name))
      problems.push(`function name ${JSON.stringify(spec.name)} is not kebab-case`);
    claim(`function ${spec.name}`, spec.name);
    for (const route of spec.httpRoutes ?? []) claim(`HTTP route ${route}`, spec.name);
    for (const route of spec.wsRoutes ?? []) claim(`WebSocket ${route}`, spec.name);
  }
  const ws = new Set(specs.flatMap((s) => s.wsRoutes ?? []));
  if (ws.has('$connect') && !ws.has('authorizer')) {
    problems.push('a $connect route needs an authorizer function: refusing an unauthenticated handshake');
  }
  if (ws.has('authorizer') && !ws.has('$connect')) {
    problems.push('an authorizer needs a $connect route to guard');
  }
  if (problems.length > 0) throw new Error(`Invalid function manifest:\n  - ${problems.join('\n  - ')}`);
}
