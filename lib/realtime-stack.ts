import { Annotations, CfnOutput, Lazy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import type { Construct } from 'constructs';
import type { Settings } from '../lambdas/core/settings.ts';
import { TABLE_KEYS, type TableKey } from '../lambdas/core/tables.ts';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import { type CustomDomains, type DeploymentOptions, readConfig, settingsEnvironment } from './config.ts';
import { FanoutQueue } from './fanout-queue.ts';
import { functionGroup } from './function-groups.ts';
import { type CustomDomain, HttpEndpoint } from './http-api.ts';
import { acknowledgeFindings } from './nag.ts';
import { Observability } from './observability.ts';
import { REPO_ROOT } from './paths.ts';
import { ProductFunctions } from './product-functions.ts';
import { SigningKeys } from './signing-keys.ts';
import { pascal, Storage } from './storage.ts';
import { SweeperSchedule } from './sweeper.ts';
import { WebSocketEndpoint, WS_STAGE } from './websocket-api.ts';

/** Functions cache their keys this long (lambdas/aws/key-source.ts): a retired key must outlive it. */
const KEY_CACHE_S = 600;

export interface RealtimeStackProps extends StackProps {
  /** The function manifest; the stack builds, routes and grants from it alone. */
  readonly functions?: readonly FunctionSpec[];
  /** Where a function's code is: `lambdas/<name>.ts` unless told otherwise (tests). */
  readonly entryFor?: (spec: FunctionSpec) => string;
}

/** Is this the scheduled sweeper? By name, or by a `schedule: 'sweep'` field in the manifest. */
export function isSweeper(spec: FunctionSpec): boolean {
  return functionGroup(spec) === 'sweeper';
}

/** The example origin of cdk.json: synth works out of the box, a deployment with it serves no real client. */
export const PLACEHOLDER_ORIGIN = 'https://app.example.com';

/**
 * The whole system in one stack: tables, signing keys, one function per manifest entry,
 * the HTTP and WebSocket APIs, the sweeper's schedule, and what operators watch.
 * Every setting is a CDK context key (docs/deploy.md); bad ones stop synth.
 */
export class RealtimeStack extends Stack {
  readonly http: HttpEndpoint;
  readonly webSocket: WebSocketEndpoint;
  readonly functions: ProductFunctions;
  readonly keys: SigningKeys;
  readonly storage: Storage;
  readonly observability: Observability;
  readonly sweeps: SweeperSchedule;
  readonly fanout: FanoutQueue;

  constructor(scope: Construct, id: string, props: RealtimeStackProps = {}) {
    super(scope, id, props);
    const specs = props.functions ?? FUNCTIONS;
    const entryFor = props.entryFor ?? ((spec: FunctionSpec) => `${REPO_ROOT}/lambdas/${spec.name}.ts`);
    const { settings, options } = this.readSettings();
    const domain = this.customDomains(options.domains);
    this.http = new HttpEndpoint(this, 'Http', {
      allowedOrigins: settings.allowedOrigins,
      throttleRatePerS: options.throttleRatePerS,
      throttleBurst: options.throttleBurst,
      logRetention: options.logRetention,
      domain: domain(options.domains.http),
    });
    this.webSocket = new WebSocketEndpoint(this, 'WebSocket', {
      throttleRatePerS: options.throttleRatePerS,
      throttleBurst: options.throttleBurst,
      logRetention: options.logRetention,
      accountRole: options.apiGatewayAccountRole,
      domain: domain(options.domains.ws),
    });
    this.storage = new Storage(this, 'Tables');
    this.keys = new SigningKeys(this, 'SigningKeys', {
      rotation: options.keyRotation,
      retireAfterS: settings.accessTokenTtlS + settings.clockSkewS + KEY_CACHE_S,
      logRetention: options.logRetention,
    });
    this.fanout = new FanoutQueue(this, 'Fanout', { workerTimeoutS: fanoutWorkerTimeoutS(specs) });
    this.functions = this.createFunctions(specs, entryFor, settings, options);
    this.http.addRoutes(specs, this.functions.byName);
    this.webSocket.addRoutes(specs, this.functions.byName);
    this.sweeps = new SweeperSchedule(this, 'Sweeps', {
      functions: specs
        .filter(isSweeper)
        .map((spec) => ({ name: spec.name, fn: this.functions.get(spec.name) })),
      intervalS: settings.sweepIntervalS,
    });
    this.observability = this.createObservability(specs, settings, options);
    this.addEndpointOutputs();
    this.addOperationsOutputs(settings);
    acknowledgeFindings(this);
  }

  /**
   * The settings and options from context. The token issuer and audience default to this
   * deployment's own HTTP API, which needs the settings (CORS) first: lazy values break the circle.
   */
  private readSettings(): { settings: Settings; options: DeploymentOptions } {
    const api = () => {
      if (!this.http) throw new Error('the HTTP API is not created yet');
      return this.http;
    };
    const config = readConfig(
      this.node,
      (opts) => ({
        // Unique per deployment and stable across updates, so tokens never cross deployments.
        // Every token carries it: changing it later (adding a domain) logs everyone out.
        tokenIssuer: opts.domains.http
          ? `https://${opts.domains.http}`
          : Lazy.string({ produce: () => api().endpoint }),
        tokenAudience: Lazy.string({
          produce: () => `urn:jwt-realtime:${this.stackName}:${api().api.apiId}:clients`,
        }),
      }),
      Token.isUnresolved(this.region) ? undefined : this.region,
    );
    if (config.settings.allowedOrigins.includes(PLACEHOLDER_ORIGIN)) {
      Annotations.of(this).addWarningV2(
        'jwt-realtime:placeholder-origin',
        `allowedOrigins includes the example ${PLACEHOLDER_ORIGIN} from cdk.json: browsers of your web client ` +
          'will be refused. Set your own origins before deploying: -c allowedOrigins=https://chat.example.org',
      );
    }
    return config;
  }

  /** A custom domain for an API, when both its name and the certificate are given. */
  private customDomains(domains: CustomDomains): (name: string | undefined) => CustomDomain | undefined {
    const certificate = domains.certificateArn
      ? acm.Certificate.fromCertificateArn(this, 'Certificate', domains.certificateArn)
      : undefined;
    return (name) => (name && certificate ? { name, certificate } : undefined);
  }

  private createFunctions(
    specs: readonly FunctionSpec[],
    entryFor: (spec: FunctionSpec) => string,
    settings: Settings,
    options: DeploymentOptions,
  ): ProductFunctions {
    return new ProductFunctions(this, 'Functions', {
      specs,
      entryFor,
      tables: this.storage.tables,
      keys: this.keys,
      connections: {
        apiId: this.webSocket.api.apiId,
        stageName: WS_STAGE,
        callbackUrl: this.webSocket.stage.callbackUrl,
      },
      fanout: this.fanout,
      settingsEnv: settingsEnvironment(settings),
      logRetention: options.logRetention,
      reservedConcurrency: options.reservedConcurrency,
    });
  }

  private createObservability(
    specs: readonly FunctionSpec[],
    settings: Settings,
    options: DeploymentOptions,
  ): Observability {
    return new Observability(this, 'Observability', {
      // The key generator's log group too: its failures are handler errors like any other.
      functions: [...this.functions.all, this.keys.function],
      groups: specs.map((spec) => ({ spec, fn: this.functions.get(spec.name), group: functionGroup(spec) })),
      tables: this.storage.tables,
      tableOperations: tableOperations(specs),
      sweepFailures: this.sweeps.failures,
      fanoutDeadLetters: this.fanout.deadLetters,
      httpApi: this.http.api,
      httpAccessLogs: this.http.accessLogs,
      webSocketApi: this.webSocket.api,
      webSocketStage: WS_STAGE,
      webSocketAccessLogs: this.webSocket.accessLogs,
      alarmEmail: options.alarmEmail,
      loginFailureAlarmThreshold: settings.loginMaxFailuresPerIp,
    });
  }

  /** Where clients reach the APIs, and what DNS needs for a custom domain. */
  private addEndpointOutputs(): void {
    const { http, webSocket } = this;
    this.output('HttpApiUrl', http.publicUrl, 'Base URL of the HTTP API');
    this.output('JwksUrl', `${http.publicUrl}/.well-known/jwks.json`, 'Public signing keys');
    this.output('WebSocketUrl', webSocket.publicUrl, 'wss:// URL of the WebSocket API');
    if (http.domainName) {
      this.addDomainOutputs('Http', 'HTTP', http.endpoint, http.domain, http.domainName);
    }
    if (webSocket.domainName) {
      this.addDomainOutputs('WebSocket', 'WebSocket', webSocket.url, webSocket.domain, webSocket.domainName);
    }
  }

  private addDomainOutputs(
    prefix: string,
    label: string,
    executeApiUrl: string,
    domain: string | undefined,
    domainName: apigw.IDomainName,
  ): void {
    this.output(
      `${prefix}ExecuteApiUrl`,
      executeApiUrl,
      `The ${label} API under its execute-api name (still reachable)`,
    );
    this.output(
      `${prefix}DomainTarget`,
      domainName.regionalDomainName,
      `DNS: point ${domain} here (CNAME, or a Route 53 alias A/AAAA record)`,
    );
    this.output(
      `${prefix}DomainHostedZoneId`,
      domainName.regionalHostedZoneId,
      `Hosted zone of ${prefix}DomainTarget, for a Route 53 alias record`,
    );
  }

  /** What operators and the users CLI read: dashboard, token claims, alarm topic, queues, tables. */
  private addOperationsOutputs(settings: Settings): void {
    this.output('DashboardUrl', this.observability.dashboardUrl, 'CloudWatch dashboard');
    this.output('TokenIssuer', settings.tokenIssuer, '`iss` of access tokens');
    this.output('TokenAudience', settings.tokenAudience, '`aud` of access tokens');
    new CfnOutput(this, 'AlarmTopicArn', { value: this.observability.alarmTopic.topicArn });
    this.output(
      'SweepFailuresQueueUrl',
      this.sweeps.failures.queueUrl,
      'Sweeps that failed or never ran (Lambda on-failure records)',
    );
    this.output(
      'FanoutDeadLetterQueueUrl',
      this.fanout.deadLetters.queueUrl,
      "Big rooms' delivery jobs that failed 5 times (the FanoutDeadLetters alarm)",
    );
    for (const key of TABLE_KEYS) {
      this.output(
        `${pascal(key)}TableName`,
        this.storage.tables[key].tableName,
        `The ${key} table (users CLI --aws reads these)`,
      );
    }
  }

  private output(id: string, value: string, description: string): void {
    new CfnOutput(this, id, { value, description });
  }
}

/** The fan-out queue's visibility follows its slowest worker (10 s at least). */
function fanoutWorkerTimeoutS(specs: readonly FunctionSpec[]): number {
  return Math.max(
    10,
    ...specs.filter((spec) => spec.fanoutQueue === 'work').map((spec) => spec.timeoutS ?? 10),
  );
}

/** The DynamoDB operations the manifest uses on each table: what the table alarms watch. */
export function tableOperations(specs: readonly FunctionSpec[]): Partial<Record<TableKey, string[]>> {
  const out: Partial<Record<TableKey, string[]>> = {};
  for (const key of TABLE_KEYS) {
    const used = new Set(specs.flatMap((spec) => spec.tables[key] ?? []));
    if (used.size > 0) out[key] = [...used].sort();
  }
  return out;
}
