import { Annotations, CfnOutput, Lazy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import type { Construct } from 'constructs';
import { TABLE_KEYS, type TableKey } from '../lambdas/core/tables.ts';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import { readConfig, settingsEnvironment } from './config.ts';
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

    // The token issuer and audience default to this deployment's own HTTP API, which needs
    // the settings (CORS) first: lazy values break the circle.
    let http: HttpEndpoint | undefined;
    const api = () => {
      if (!http) throw new Error('the HTTP API is not created yet');
      return http;
    };
    const { settings, options } = readConfig(
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
    if (settings.allowedOrigins.includes(PLACEHOLDER_ORIGIN)) {
      Annotations.of(this).addWarningV2(
        'jwt-realtime:placeholder-origin',
        `allowedOrigins includes the example ${PLACEHOLDER_ORIGIN} from cdk.json: browsers of your web client ` +
          'will be refused. Set your own origins before deploying: -c allowedOrigins=https://chat.example.org',
      );
    }
    const certificate = options.domains.certificateArn
      ? acm.Certificate.fromCertificateArn(this, 'Certificate', options.domains.certificateArn)
      : undefined;
    const domain = (name: string | undefined): CustomDomain | undefined =>
      name && certificate ? { name, certificate } : undefined;
    http = new HttpEndpoint(this, 'Http', {
      allowedOrigins: settings.allowedOrigins,
      throttleRatePerS: options.throttleRatePerS,
      throttleBurst: options.throttleBurst,
      logRetention: options.logRetention,
      domain: domain(options.domains.http),
    });
    this.http = http;
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
    this.fanout = new FanoutQueue(this, 'Fanout', {
      workerTimeoutS: Math.max(
        10,
        ...specs.filter((spec) => spec.fanoutQueue === 'work').map((spec) => spec.timeoutS ?? 10),
      ),
    });
    this.functions = new ProductFunctions(this, 'Functions', {
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
    http.addRoutes(specs, this.functions.byName);
    this.webSocket.addRoutes(specs, this.functions.byName);

    this.sweeps = new SweeperSchedule(this, 'Sweeps', {
      functions: specs
        .filter(isSweeper)
        .map((spec) => ({ name: spec.name, fn: this.functions.get(spec.name) })),
      intervalS: settings.sweepIntervalS,
    });

    this.observability = new Observability(this, 'Observability', {
      // The key generator's log group too: its failures are handler errors like any other.
      functions: [...this.functions.all, this.keys.function],
      groups: specs.map((spec) => ({ spec, fn: this.functions.get(spec.name), group: functionGroup(spec) })),
      tables: this.storage.tables,
      tableOperations: tableOperations(specs),
      sweepFailures: this.sweeps.failures,
      fanoutDeadLetters: this.fanout.deadLetters,
      httpApi: http.api,
      httpAccessLogs: http.accessLogs,
      webSocketApi: this.webSocket.api,
      webSocketStage: WS_STAGE,
      webSocketAccessLogs: this.webSocket.accessLogs,
      alarmEmail: options.alarmEmail,
      loginFailureAlarmThreshold: settings.loginMaxFailuresPerIp,
    });

    new CfnOutput(this, 'HttpApiUrl', { value: http.publicUrl, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'JwksUrl', {
      value: `${http.publicUrl}/.well-known/jwks.json`,
      description: 'Public signing keys',
    });
    new CfnOutput(this, 'WebSocketUrl', {
      value: this.webSocket.publicUrl,
      description: 'wss:// URL of the WebSocket API',
    });
    if (http.domainName) {
      new CfnOutput(this, 'HttpExecuteApiUrl', {
        value: http.endpoint,
        description: 'The HTTP API under its execute-api name (still reachable)',
      });
      new CfnOutput(this, 'HttpDomainTarget', {
        value: http.domainName.regionalDomainName,
        description: `DNS: point ${http.domain} here (CNAME, or a Route 53 alias A/AAAA record)`,
      });
      new CfnOutput(this, 'HttpDomainHostedZoneId', {
        value: http.domainName.regionalHostedZoneId,
        description: 'Hosted zone of HttpDomainTarget, for a Route 53 alias record',
      });
    }
    if (this.webSocket.domainName) {
      new CfnOutput(this, 'WebSocketExecuteApiUrl', {
        value: this.webSocket.url,
        description: 'The WebSocket API under its execute-api name (still reachable)',
      });
      new CfnOutput(this, 'WebSocketDomainTarget', {
        value: this.webSocket.domainName.regionalDomainName,
        description: `DNS: point ${this.webSocket.domain} here (CNAME, or a Route 53 alias A/AAAA record)`,
      });
      new CfnOutput(this, 'WebSocketDomainHostedZoneId', {
        value: this.webSocket.domainName.regionalHostedZoneId,
        description: 'Hosted zone of WebSocketDomainTarget, for a Route 53 alias record',
      });
    }
    new CfnOutput(this, 'DashboardUrl', {
      value: this.observability.dashboardUrl,
      description: 'CloudWatch dashboard',
    });
    new CfnOutput(this, 'TokenIssuer', {
      value: settings.tokenIssuer,
      description: '`iss` of access tokens',
    });
    new CfnOutput(this, 'TokenAudience', {
      value: settings.tokenAudience,
      description: '`aud` of access tokens',
    });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.observability.alarmTopic.topicArn });
    new CfnOutput(this, 'SweepFailuresQueueUrl', {
      value: this.sweeps.failures.queueUrl,
      description: 'Sweeps that failed or never ran (Lambda on-failure records)',
    });
    new CfnOutput(this, 'FanoutDeadLetterQueueUrl', {
      value: this.fanout.deadLetters.queueUrl,
      description: "Big rooms' delivery jobs that failed 5 times (the FanoutDeadLetters alarm)",
    });
    for (const key of TABLE_KEYS) {
      new CfnOutput(this, `${pascal(key)}TableName`, {
        value: this.storage.tables[key].tableName,
        description: `The ${key} table (users CLI --aws reads these)`,
      });
    }
    acknowledgeFindings(this);
  }
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
