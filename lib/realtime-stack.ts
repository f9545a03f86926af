import { CfnOutput, Duration, Lazy, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type { Construct } from 'constructs';
import { TABLE_KEYS } from '../lambdas/core/tables.ts';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import { readConfig, settingsEnvironment } from './config.ts';
import { HttpEndpoint } from './http-api.ts';
import { acknowledgeFindings } from './nag.ts';
import { Observability } from './observability.ts';
import { REPO_ROOT } from './paths.ts';
import { ProductFunctions } from './product-functions.ts';
import { SigningKeys } from './signing-keys.ts';
import { pascal, Storage } from './storage.ts';
import { WebSocketEndpoint, WS_STAGE } from './websocket-api.ts';

/** Functions cache their keys this long (lambdas/core/aws-keys.ts): a retired key must outlive it. */
const KEY_CACHE_S = 600;

export interface RealtimeStackProps extends StackProps {
  /** The function manifest; the stack builds, routes and grants from it alone. */
  readonly functions?: readonly FunctionSpec[];
  /** Where a function's code is: `lambdas/<name>.ts` unless told otherwise (tests). */
  readonly entryFor?: (spec: FunctionSpec) => string;
}

/** Is this the scheduled sweeper? By name, or by a `schedule: 'sweep'` field in the manifest. */
export function isSweeper(spec: FunctionSpec): boolean {
  return spec.name === 'sweeper' || ('schedule' in spec && spec.schedule === 'sweep');
}

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
    const { settings, options } = readConfig(this.node, {
      // Unique per deployment and stable across updates, so tokens never cross deployments.
      tokenIssuer: Lazy.string({ produce: () => api().endpoint }),
      tokenAudience: Lazy.string({
        produce: () => `urn:jwt-realtime:${this.stackName}:${api().api.apiId}:clients`,
      }),
    });
    http = new HttpEndpoint(this, 'Http', {
      allowedOrigins: settings.allowedOrigins,
      throttleRatePerS: options.throttleRatePerS,
      throttleBurst: options.throttleBurst,
      logRetention: options.logRetention,
    });
    this.http = http;
    this.webSocket = new WebSocketEndpoint(this, 'WebSocket', {
      throttleRatePerS: options.throttleRatePerS,
      throttleBurst: options.throttleBurst,
      logRetention: options.logRetention,
      accountRole: options.apiGatewayAccountRole,
    });
    this.storage = new Storage(this, 'Tables');
    this.keys = new SigningKeys(this, 'SigningKeys', {
      rotation: options.keyRotation,
      retireAfterS: settings.accessTokenTtlS + settings.clockSkewS + KEY_CACHE_S,
      logRetention: options.logRetention,
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
      settingsEnv: settingsEnvironment(settings),
      logRetention: options.logRetention,
    });
    http.addRoutes(specs, this.functions.byName);
    this.webSocket.addRoutes(specs, this.functions.byName);

    for (const spec of specs.filter(isSweeper)) {
      new events.Rule(this, `${pascal(spec.name)}Schedule`, {
        description: `Runs ${spec.name} every ${settings.sweepIntervalS} s (sweepIntervalS)`,
        schedule: events.Schedule.rate(Duration.seconds(settings.sweepIntervalS)),
        // A missed sweep is redone by the next one: no retries piling up.
        targets: [
          new targets.LambdaFunction(this.functions.get(spec.name), {
            retryAttempts: 0,
            maxEventAge: Duration.seconds(Math.max(60, settings.sweepIntervalS)),
          }),
        ],
      });
    }

    this.observability = new Observability(this, 'Observability', {
      // The key generator's log group too: its failures are handler errors like any other.
      functions: [...this.functions.all, this.keys.function],
      httpApi: http.api,
      httpAccessLogs: http.accessLogs,
      webSocketApi: this.webSocket.api,
      webSocketStage: WS_STAGE,
      webSocketAccessLogs: this.webSocket.accessLogs,
      alarmEmail: options.alarmEmail,
      loginFailureAlarmThreshold: settings.loginMaxFailuresPerIp,
    });

    new CfnOutput(this, 'HttpApiUrl', { value: http.endpoint, description: 'Base URL of the HTTP API' });
    new CfnOutput(this, 'JwksUrl', {
      value: `${http.endpoint}/.well-known/jwks.json`,
      description: 'Public signing keys',
    });
    new CfnOutput(this, 'WebSocketUrl', {
      value: this.webSocket.url,
      description: 'wss:// URL of the WebSocket API',
    });
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
    for (const key of TABLE_KEYS) {
      new CfnOutput(this, `${pascal(key)}TableName`, {
        value: this.storage.tables[key].tableName,
        description: `The ${key} table (users CLI --aws reads these)`,
      });
    }
    acknowledgeFindings(this);
  }
}
