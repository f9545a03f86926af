import type { CfnElement } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { envName, SETTING_NAMES } from '../../lambdas/core/settings.ts';
import { TABLE_KEYS, TABLES, tableEnvName } from '../../lambdas/core/tables.ts';
import { FUNCTIONS, type FunctionSpec } from '../../lambdas/functions.ts';
import { COUNTED_EVENTS } from '../../lib/observability.ts';
import { isSweeper } from '../../lib/realtime-stack.ts';
import { WS_STAGE } from '../../lib/websocket-api.ts';
import {
  actionsOf,
  functionId,
  props,
  resources,
  resourcesOf,
  roleStatements,
  type Synthesized,
  synth,
  validationViolations,
} from './support.ts';

let s: Synthesized;
const resolve = (value: unknown) => s.stack.resolve(value) as unknown;
const json = (value: unknown) => JSON.stringify(value);
const envOf = (name: string) =>
  (
    props(resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, name)] ?? {}).Environment as {
      Variables: Record<string, unknown>;
    }
  ).Variables;

beforeAll(() => {
  s = synth();
}, 120_000);

describe('tables', () => {
  it('creates every table of the shared definitions on demand, with its keys and indexes', () => {
    const tables = Object.values(resources(s.template, 'AWS::DynamoDB::Table'));
    expect(tables).toHaveLength(TABLE_KEYS.length);
    for (const key of TABLE_KEYS) {
      const def = TABLES[key];
      const keySchema = [
        { AttributeName: def.partitionKey.name, KeyType: 'HASH' },
        ...(def.sortKey ? [{ AttributeName: def.sortKey.name, KeyType: 'RANGE' }] : []),
      ];
      s.template.hasResourceProperties('AWS::DynamoDB::Table', {
        KeySchema: keySchema,
        BillingMode: 'PAY_PER_REQUEST',
        ...(def.indexes.length > 0
          ? {
              GlobalSecondaryIndexes: Match.arrayWith(
                def.indexes.map((index) =>
                  Match.objectLike({
                    IndexName: index.indexName,
                    KeySchema: [{ AttributeName: index.partitionKey.name, KeyType: 'HASH' }],
                    Projection: { ProjectionType: index.projection === 'KEYS_ONLY' ? 'KEYS_ONLY' : 'ALL' },
                  }),
                ),
              ),
            }
          : {}),
      });
    }
  });

  it('turns on TTL by expiresAt exactly where the definitions ask', () => {
    for (const key of TABLE_KEYS) {
      const table = resolve(s.stack.storage.tables[key].tableName) as { Ref: string };
      const resource = resources(s.template, 'AWS::DynamoDB::Table')[table.Ref] ?? {};
      const ttl = props(resource).TimeToLiveSpecification;
      if (TABLES[key].ttlAttribute) expect(ttl, key).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      else expect(ttl, key).toBeUndefined();
    }
  });

  it('keeps users and sessions: RETAIN, deletion protection and point-in-time recovery; the rest go with the stack', () => {
    for (const key of TABLE_KEYS) {
      const { Ref } = resolve(s.stack.storage.tables[key].tableName) as { Ref: string };
      const resource = resources(s.template, 'AWS::DynamoDB::Table')[Ref] ?? {};
      const durable = TABLES[key].durable;
      expect(resource.DeletionPolicy, key).toBe(durable ? 'Retain' : 'Delete');
      expect(props(resource).DeletionProtectionEnabled ?? false, key).toBe(durable);
      expect(
        (
          props(resource).PointInTimeRecoverySpecification as
            | { PointInTimeRecoveryEnabled?: boolean }
            | undefined
        )?.PointInTimeRecoveryEnabled ?? false,
        key,
      ).toBe(durable);
    }
    expect(TABLES.users.durable && TABLES.sessions.durable).toBe(true);
  });
});

describe('functions', () => {
  it('builds one function per manifest entry, plus the key generator', () => {
    expect(Object.keys(resources(s.template, 'AWS::Lambda::Function'))).toHaveLength(FUNCTIONS.length + 1);
    for (const spec of FUNCTIONS) expect(() => functionId(s.template, spec.name)).not.toThrow();
  });

  it('runs every function on Node.js 24, arm64, ESM with source maps, in its own log group kept 30 days', () => {
    const groups = resources(s.template, 'AWS::Logs::LogGroup');
    for (const [id, fn] of Object.entries(resources(s.template, 'AWS::Lambda::Function'))) {
      const p = props(fn);
      expect(p.Runtime, id).toBe('nodejs24.x');
      expect(p.Architectures, id).toEqual(['arm64']);
      expect(p.Handler, id).toBe('index.handler');
      expect((p.Environment as { Variables: Record<string, unknown> }).Variables.NODE_OPTIONS).toBe(
        '--enable-source-maps',
      );
      const logging = p.LoggingConfig as { LogFormat: string; LogGroup: { Ref: string } };
      expect(logging.LogFormat).toBe('JSON');
      expect(props(groups[logging.LogGroup.Ref] ?? {}).RetentionInDays, id).toBe(30);
    }
  });

  it('takes memory and timeout from the manifest', () => {
    for (const spec of FUNCTIONS) {
      const p = props(
        resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, spec.name)] ?? {},
      );
      expect(p.MemorySize, spec.name).toBe(spec.memoryMb ?? 256);
      expect(p.Timeout, spec.name).toBe(spec.timeoutS ?? 10);
    }
  });

  it('gives every function every setting and every table name', () => {
    for (const spec of FUNCTIONS) {
      const env = envOf(spec.name);
      for (const name of SETTING_NAMES) expect(env, `${spec.name} ${name}`).toHaveProperty(envName(name));
      for (const key of TABLE_KEYS) {
        expect(env[tableEnvName(key)], spec.name).toEqual(resolve(s.stack.storage.tables[key].tableName));
      }
      expect(env.ALLOWED_ORIGINS).toBe('https://app.example.com');
      expect(env.SWEEP_INTERVAL_S).toBe('300');
    }
  });

  it('sets a deployment-unique token issuer (the HTTP API address) and audience', () => {
    const env = envOf('http-login');
    expect(env.TOKEN_ISSUER).toEqual(resolve(s.stack.http.api.apiEndpoint));
    expect(json(env.TOKEN_AUDIENCE)).toContain('urn:jwt-realtime:Test:');
    expect(json(env.TOKEN_AUDIENCE)).toContain(json(resolve(s.stack.http.api.apiId)));
  });

  it('hands the signing secret to signers, the public one to verifiers, nothing to the rest', () => {
    const privateArn = resolve(s.stack.keys.privateSecret.secretArn);
    const publicArn = resolve(s.stack.keys.publicSecret.secretArn);
    for (const spec of FUNCTIONS) {
      const env = envOf(spec.name);
      expect(env.SIGNING_KEYS_SECRET_ARN, spec.name).toEqual(spec.keys === 'sign' ? privateArn : undefined);
      expect(env.PUBLIC_KEYS_SECRET_ARN, spec.name).toEqual(spec.keys === 'verify' ? publicArn : undefined);
    }
  });

  it('gives WS_MANAGEMENT_ENDPOINT, the stage callback URL, to the functions that manage connections', () => {
    const callback = resolve(s.stack.webSocket.stage.callbackUrl);
    expect(json(callback)).toContain(`/${WS_STAGE}`);
    expect(json(callback)).toContain('https://');
    for (const spec of FUNCTIONS) {
      expect(envOf(spec.name).WS_MANAGEMENT_ENDPOINT, spec.name).toEqual(
        spec.manageConnections ? callback : undefined,
      );
    }
  });
});

describe('least privilege', () => {
  /** `action resource` pairs a function may use according to its manifest entry, and nothing else. */
  function expectedGrants(spec: FunctionSpec): Set<string> {
    const out = new Set<string>();
    const fn = s.stack.functions.get(spec.name);
    for (const action of ['logs:CreateLogStream', 'logs:PutLogEvents']) {
      out.add(`${action} ${json(resolve(fn.functionLogGroup.logGroupArn))}`);
    }
    for (const key of TABLE_KEYS) {
      const table = s.stack.storage.tables[key];
      for (const action of spec.tables[key] ?? []) {
        out.add(`dynamodb:${action} ${json(resolve(table.tableArn))}`);
        if (action === 'Query') {
          for (const index of TABLES[key].indexes) {
            out.add(`dynamodb:${action} ${json(resolve(`${table.tableArn}/index/${index.indexName}`))}`);
          }
        }
      }
    }
    if (spec.keys === 'sign')
      out.add(`secretsmanager:GetSecretValue ${json(resolve(s.stack.keys.privateSecret.secretArn))}`);
    if (spec.keys === 'verify')
      out.add(`secretsmanager:GetSecretValue ${json(resolve(s.stack.keys.publicSecret.secretArn))}`);
    if (spec.manageConnections) {
      for (const method of ['POST', 'GET', 'DELETE']) {
        const arn = s.stack.formatArn({
          service: 'execute-api',
          resource: s.stack.webSocket.api.apiId,
          resourceName: `${WS_STAGE}/${method}/@connections/*`,
        });
        out.add(`execute-api:ManageConnections ${json(resolve(arn))}`);
      }
    }
    return out;
  }

  function grantedPairs(name: string): Set<string> {
    const out = new Set<string>();
    for (const statement of roleStatements(s.template, functionId(s.template, name))) {
      expect(statement.Effect).toBe('Allow');
      for (const action of actionsOf(statement)) {
        for (const resource of resourcesOf(statement)) out.add(`${action} ${json(resource)}`);
      }
    }
    return out;
  }

  it.each(FUNCTIONS.map((spec) => [spec.name, spec] as const))(
    '%s may do exactly what its manifest entry lists',
    (_name, spec) => {
      expect([...grantedPairs(spec.name)].sort()).toEqual([...expectedGrants(spec)].sort());
    },
  );

  it('lets only token-issuing functions read the private key: never the authorizer or the WebSocket handlers', () => {
    const privateArn = json(resolve(s.stack.keys.privateSecret.secretArn));
    const readers = FUNCTIONS.filter((spec) =>
      [...grantedPairs(spec.name)].some((pair) => pair.includes(privateArn)),
    ).map((spec) => spec.name);
    expect(readers.sort()).toEqual(
      FUNCTIONS.filter((spec) => spec.keys === 'sign')
        .map((spec) => spec.name)
        .sort(),
    );
    for (const spec of FUNCTIONS.filter((f) => f.wsRoutes?.length || isSweeper(f))) {
      expect(readers, spec.name).not.toContain(spec.name);
    }
    expect(readers).not.toContain('ws-authorizer');
    expect(readers).toContain('http-login');
  });

  it('grants no wildcard action and no "*" resource to any function', () => {
    for (const id of Object.keys(resources(s.template, 'AWS::Lambda::Function'))) {
      for (const statement of roleStatements(s.template, id)) {
        for (const action of actionsOf(statement)) expect(action, id).not.toMatch(/\*/);
        for (const resource of resourcesOf(statement)) expect(resource, id).not.toBe('*');
      }
    }
  });

  it('lets the key generator write both secrets and read only the private one', () => {
    const id = s.stack.getLogicalId(s.stack.keys.function.node.defaultChild as CfnElement);
    const pairs = new Set<string>();
    for (const statement of roleStatements(s.template, id)) {
      for (const a of actionsOf(statement))
        for (const r of resourcesOf(statement)) pairs.add(`${a} ${json(r)}`);
    }
    const priv = json(resolve(s.stack.keys.privateSecret.secretArn));
    const pub = json(resolve(s.stack.keys.publicSecret.secretArn));
    const secretPairs = [...pairs].filter((p) => p.startsWith('secretsmanager:')).sort();
    expect(secretPairs).toEqual(
      [
        `secretsmanager:GetSecretValue ${priv}`,
        `secretsmanager:PutSecretValue ${priv}`,
        `secretsmanager:PutSecretValue ${pub}`,
      ].sort(),
    );
    expect([...pairs].filter((p) => !p.startsWith('secretsmanager:') && !p.startsWith('logs:'))).toEqual([]);
  });
});

describe('HTTP API', () => {
  it('serves every HTTP route of the manifest, each through its function', () => {
    const routes = Object.values(resources(s.template, 'AWS::ApiGatewayV2::Route')).filter(
      (r) => json(props(r).ApiId) === json(resolve(s.stack.http.api.apiId)),
    );
    const keys = routes.map((r) => props(r).RouteKey as string).sort();
    expect(keys).toEqual(FUNCTIONS.flatMap((spec) => spec.httpRoutes ?? []).sort());
    expect(keys).toEqual(
      expect.arrayContaining(['POST /auth/login', 'GET /.well-known/jwks.json', 'GET /health']),
    );
    for (const spec of FUNCTIONS.filter((f) => f.httpRoutes?.length)) {
      s.template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationType: 'AWS_PROXY',
        PayloadFormatVersion: '2.0',
        IntegrationUri: { 'Fn::GetAtt': [functionId(s.template, spec.name), 'Arn'] },
      });
    }
  });

  it('answers CORS for exactly the allowed origins, without credentials', () => {
    s.template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      ProtocolType: 'HTTP',
      CorsConfiguration: Match.objectLike({
        AllowOrigins: ['https://app.example.com'],
        AllowCredentials: false,
        AllowHeaders: ['authorization', 'content-type'],
      }),
    });
  });

  it('has a throttled $default stage with JSON access logs that never carry a query string', () => {
    const stage = Object.values(resources(s.template, 'AWS::ApiGatewayV2::Stage')).find(
      (r) => props(r).StageName === '$default',
    );
    const p = props(stage ?? {});
    expect(p.AutoDeploy).toBe(true);
    expect(p.DefaultRouteSettings).toEqual({ ThrottlingBurstLimit: 1000, ThrottlingRateLimit: 500 });
    const format = (p.AccessLogSettings as { Format: string }).Format;
    const fields = JSON.parse(format) as Record<string, string>;
    expect(fields.requestId).toBe('$context.requestId');
    expect(fields.routeKey).toBe('$context.routeKey');
    expect(format).not.toMatch(/query|path|header|authorization/i);
  });
});

describe('WebSocket API', () => {
  const wsRoutes = () =>
    Object.values(resources(s.template, 'AWS::ApiGatewayV2::Route')).filter(
      (r) => json(props(r).ApiId) === json(resolve(s.stack.webSocket.api.apiId)),
    );
  const route = (key: string) => props(wsRoutes().find((r) => props(r).RouteKey === key) ?? {});

  it('has a REQUEST authorizer with no identity source, so every token carrier reaches it', () => {
    // With any identity source, API Gateway answers 401 itself when that source is missing:
    // a browser's Sec-WebSocket-Protocol token, ?token= and ?ticket= would never be checked.
    const authorizers = Object.values(resources(s.template, 'AWS::ApiGatewayV2::Authorizer'));
    expect(authorizers).toHaveLength(1);
    const p = props(authorizers[0] ?? {});
    expect(p.AuthorizerType).toBe('REQUEST');
    expect(p).not.toHaveProperty('IdentitySource');
    expect(json(p.AuthorizerUri)).toContain(functionId(s.template, 'ws-authorizer'));
  });

  it('guards $connect with the authorizer and routes $default (with a route response) and $disconnect', () => {
    expect(
      wsRoutes()
        .map((r) => props(r).RouteKey)
        .sort(),
    ).toEqual(['$connect', '$default', '$disconnect']);
    const authorizerId = Object.keys(resources(s.template, 'AWS::ApiGatewayV2::Authorizer'))[0];
    expect(route('$connect')).toMatchObject({
      AuthorizationType: 'CUSTOM',
      AuthorizerId: { Ref: authorizerId },
    });
    expect(route('$default').RouteResponseSelectionExpression).toBe('$default');
    s.template.hasResourceProperties('AWS::ApiGatewayV2::RouteResponse', { RouteResponseKey: '$default' });
    expect(route('$disconnect').AuthorizationType).toBe('NONE');
    for (const spec of FUNCTIONS.filter((f) => f.wsRoutes?.some((r) => r !== 'authorizer'))) {
      s.template.hasResourceProperties('AWS::ApiGatewayV2::Integration', {
        IntegrationType: 'AWS_PROXY',
        IntegrationUri: Match.objectLike({
          'Fn::Join': Match.arrayWith([
            Match.arrayWith([{ 'Fn::GetAtt': [functionId(s.template, spec.name), 'Arn'] }]),
          ]),
        }),
      });
    }
  });

  it('has a throttled stage whose JSON access logs name the caller but never the query string', () => {
    const [id, stage] = Object.entries(resources(s.template, 'AWS::ApiGatewayV2::Stage')).find(
      ([, r]) => props(r).StageName === WS_STAGE,
    ) ?? ['', {}];
    const p = props(stage);
    expect(p.DefaultRouteSettings).toEqual({ ThrottlingBurstLimit: 1000, ThrottlingRateLimit: 500 });
    const format = (p.AccessLogSettings as { Format: string }).Format;
    const fields = JSON.parse(format) as Record<string, string>;
    expect(fields).toMatchObject({
      requestId: '$context.requestId',
      connectionId: '$context.connectionId',
      eventType: '$context.eventType',
      routeKey: '$context.routeKey',
      ip: '$context.identity.sourceIp',
      authorizerError: '$context.authorizer.error',
      username: '$context.authorizer.username',
    });
    expect(format).not.toMatch(/query|header|authorization|token/i);
    expect(Buffer.byteLength(format)).toBeLessThan(3 * 1024);
    // Stage logs need the account's API Gateway role, and a deployable stage needs routes.
    const dependsOn = (stage.DependsOn as string[]) ?? [];
    expect(dependsOn.some((d) => d.includes('ApiGatewayAccount'))).toBe(true);
    expect(dependsOn.filter((d) => d.includes('Route')).length).toBeGreaterThanOrEqual(3);
    expect(id).not.toBe('');
  });

  it('sets the account API Gateway logging role and keeps it on deletion', () => {
    const [account] = Object.values(resources(s.template, 'AWS::ApiGateway::Account'));
    expect(account?.DeletionPolicy).toBe('Retain');
    const roleId =
      (props(account ?? {}).CloudWatchRoleArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0] ?? '';
    expect(resources(s.template, 'AWS::IAM::Role')[roleId]?.DeletionPolicy).toBe('Retain');
  });
});

describe('signing keys', () => {
  it('creates them with a custom resource that gets secret ARNs, never key material', () => {
    const [resource] = Object.values(resources(s.template, 'Custom::SigningKeys'));
    expect(props(resource ?? {})).toEqual({
      ServiceToken: resolve(s.stack.keys.function.functionArn),
      ServiceTimeout: '120',
      PrivateSecretArn: resolve(s.stack.keys.privateSecret.secretArn),
      PublicSecretArn: resolve(s.stack.keys.publicSecret.secretArn),
      Rotation: '1',
      // access token lifetime + clock skew + the functions' 10-minute key cache
      RetireAfterS: String(900 + 30 + 600),
    });
  });

  it('puts no secret value in the template', () => {
    for (const secret of Object.values(resources(s.template, 'AWS::SecretsManager::Secret'))) {
      expect(props(secret)).not.toHaveProperty('SecretString');
    }
  });

  it('starts functions that read keys only after the keys exist', () => {
    const [customId] = Object.keys(resources(s.template, 'Custom::SigningKeys'));
    for (const spec of FUNCTIONS) {
      const fn = resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, spec.name)] ?? {};
      const deps = (fn.DependsOn as string[] | undefined) ?? [];
      expect(deps.includes(customId ?? ''), spec.name).toBe(spec.keys !== 'none');
    }
  });
});

describe('sweeper', () => {
  it('runs every sweepIntervalS on an EventBridge schedule, without retries', () => {
    const sweepers = FUNCTIONS.filter(isSweeper);
    expect(sweepers.map((f) => f.name)).toContain('sweeper');
    s.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      State: 'ENABLED',
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [functionId(s.template, 'sweeper'), 'Arn'] },
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 300 },
        }),
      ],
    });
    s.template.resourceCountIs('AWS::Events::Rule', sweepers.length);
  });
});

describe('observability', () => {
  it('counts audit events and errors in every function log group', () => {
    const filters = Object.values(resources(s.template, 'AWS::Logs::MetricFilter'));
    const functionCount = FUNCTIONS.length + 1;
    expect(filters).toHaveLength(functionCount * 2);
    const audit = filters.filter((f) => json(props(f)).includes('"AuditEvents"'));
    expect(audit).toHaveLength(functionCount);
    for (const filter of audit) {
      const pattern = props(filter).FilterPattern as string;
      for (const event of ['auth.login_failed', 'ws.denied', 'ws.rate_limited', 'user.blocked']) {
        expect(pattern).toContain(`$.event = "${event}"`);
      }
      expect(props(filter).MetricTransformations).toEqual([
        expect.objectContaining({
          MetricName: 'AuditEvents',
          Dimensions: [{ Key: 'Event', Value: '$.event' }],
        }),
      ]);
    }
    const errors = filters.filter((f) => json(props(f)).includes('"HandlerErrors"'));
    for (const filter of errors) expect(props(filter).FilterPattern).toContain('$.level = "error"');
    expect(COUNTED_EVENTS.length).toBeGreaterThan(5);
  });

  it('alarms on failed logins, denials, rate limits, blocks and errors, to the alarm topic', () => {
    const alarms = Object.values(resources(s.template, 'AWS::CloudWatch::Alarm')).map(props);
    const byEvent = (event: string) =>
      alarms.find(
        (a) => json(a).includes(`"Value":"${event}"`) && json(a).includes('"MetricName":"AuditEvents"'),
      );
    for (const event of [
      'auth.login_failed',
      'ws.denied',
      'ws.rate_limited',
      'user.blocked',
      'auth.refresh_reuse',
    ]) {
      expect(byEvent(event), event).toBeDefined();
    }
    expect(byEvent('auth.login_failed')?.Threshold).toBe(50);
    expect(alarms.find((a) => json(a).includes('"MetricName":"HandlerErrors"'))?.Threshold).toBe(1);
    // A single payload that some member could not get, after retries, is worth a look.
    expect(byEvent('delivery.failed')?.Threshold).toBe(1);
    const topic = resolve(s.stack.observability.alarmTopic.topicArn);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([topic]);
      expect(alarm.TreatMissingData).toBe('notBreaching');
      expect(typeof alarm.AlarmDescription).toBe('string');
    }
  });

  it("saves the operator's Logs Insights queries", () => {
    const queries = Object.values(resources(s.template, 'AWS::Logs::QueryDefinition')).map(props);
    const named = (suffix: string) => queries.find((q) => String(q.Name).endsWith(suffix));
    expect(named('/failed logins by IP')?.QueryString).toMatch(/auth\.login_failed[\s\S]*by ip/);
    expect(named('/denials by reason')?.QueryString).toMatch(/ws\.denied[\s\S]*by event, reason/);
    expect(named('/who was blocked and why')?.QueryString).toMatch(
      /fields .*username, ip, reason[\s\S]*user\.blocked/,
    );
    expect(named('/top senders')?.QueryString).toMatch(/\$default[\s\S]*by username, principal/);
    expect(named('/delivery failures')?.QueryString).toMatch(/delivery\.failed[\s\S]*sum\(failed\)/);
    expect(named('/top senders')?.LogGroupNames).toEqual([
      resolve(s.stack.webSocket.accessLogs.logGroupName),
    ]);
    expect(named('/failed logins by IP')?.LogGroupNames).toHaveLength(FUNCTIONS.length + 1);
  });

  it('builds a dashboard and outputs its address with both API URLs', () => {
    s.template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const outputs = s.template.findOutputs('*');
    expect(json(outputs.HttpApiUrl?.Value)).toContain('ApiEndpoint');
    expect(outputs.WebSocketUrl?.Value).toEqual(resolve(s.stack.webSocket.url));
    expect(json(outputs.WebSocketUrl?.Value)).toContain('wss://');
    expect(json(outputs.DashboardUrl?.Value)).toContain('#dashboards:name=');
    for (const key of TABLE_KEYS)
      expect(outputs).toHaveProperty(`${key[0]?.toUpperCase()}${key.slice(1)}TableName`);
  });
});

describe('synth-time checks', () => {
  it('leaves no finding from cdk-nag AwsSolutions or the CloudFormation validator', () => {
    const violations = validationViolations(s.assembly);
    expect(violations).toEqual({});
  });

  it('acknowledges only the reviewed cdk-nag rules, each with a reason', () => {
    const acknowledged = new Map<string, string>();
    for (const construct of s.stack.node.findAll()) {
      for (const entry of construct.node.metadata) {
        if (entry.type !== 'aws:cdk:acknowledged-rules') continue;
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>))
          acknowledged.set(id, reason);
      }
    }
    const rules = new Set(
      [...acknowledged.keys()].map((id) => id.replace(/^Annotation::/, '').replace(/\[.*$/, '')),
    );
    const reviewed = [
      'AwsSolutions-APIG4',
      'AwsSolutions-DDB3',
      'AwsSolutions-IAM4',
      'AwsSolutions-IAM5',
      'AwsSolutions-SMG4',
    ];
    for (const rule of rules) expect(reviewed, rule).toContain(rule);
    for (const [id, reason] of acknowledged) expect(reason.length, id).toBeGreaterThan(80);
    const iam5 = [...acknowledged.keys()].filter((id) => id.includes('IAM5'));
    for (const id of iam5) expect(id).toMatch(/@connections\/\*\]$/);
  });
});
