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
                    Projection:
                      typeof index.projection === 'string'
                        ? { ProjectionType: index.projection }
                        : { ProjectionType: 'INCLUDE', NonKeyAttributes: [...index.projection] },
                  }),
                ),
              ),
            }
          : {}),
      });
    }
  });

  it('never copies password hashes into an index: users.byExternalId holds what the token exchange reads', () => {
    const { Ref } = resolve(s.stack.storage.tables.users.tableName) as { Ref: string };
    const users = props(resources(s.template, 'AWS::DynamoDB::Table')[Ref] ?? {});
    const indexes = users.GlobalSecondaryIndexes as {
      IndexName: string;
      Projection: Record<string, unknown>;
    }[];
    expect(indexes.find((i) => i.IndexName === 'byExternalId')?.Projection).toEqual({
      ProjectionType: 'INCLUDE',
      NonKeyAttributes: ['sub', 'roles'],
    });
    for (const table of Object.values(resources(s.template, 'AWS::DynamoDB::Table'))) {
      for (const index of (props(table).GlobalSecondaryIndexes ?? []) as { Projection: unknown }[]) {
        expect(json(index.Projection)).not.toContain('passwordHash');
      }
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

  it('runs every function on Node.js 22, arm64, ESM with source maps, in its own log group kept 30 days', () => {
    const groups = resources(s.template, 'AWS::Logs::LogGroup');
    for (const [id, fn] of Object.entries(resources(s.template, 'AWS::Lambda::Function'))) {
      const p = props(fn);
      expect(p.Runtime, id).toBe('nodejs22.x');
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
    if (isSweeper(spec)) {
      // Lambda's on-failure destination writes through the function's role.
      for (const action of ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl']) {
        out.add(`${action} ${json(resolve(s.stack.sweeps.failures.queueArn))}`);
      }
    }
    const jobs = json(resolve(s.stack.fanout.queue.queueArn));
    if (spec.fanoutQueue) out.add(`sqs:SendMessage ${jobs}`);
    if (spec.fanoutQueue === 'work') {
      // What the event source mapping polls with, through the worker's role.
      for (const action of [
        'sqs:ReceiveMessage',
        'sqs:ChangeMessageVisibility',
        'sqs:GetQueueUrl',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
      ]) {
        out.add(`${action} ${jobs}`);
      }
    }
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

  it("turns off Lambda's own async retries, which EventBridge's retryAttempts does not reach", () => {
    const failures = resolve(s.stack.sweeps.failures.queueArn);
    expect(Object.values(resources(s.template, 'AWS::Lambda::EventInvokeConfig')).map(props)).toEqual([
      {
        FunctionName: { Ref: functionId(s.template, 'sweeper') },
        Qualifier: '$LATEST',
        MaximumRetryAttempts: 0,
        // One interval: a sweep that cannot start before the next one is due is dropped.
        MaximumEventAgeInSeconds: 300,
        DestinationConfig: { OnFailure: { Destination: failures } },
      },
    ]);
  });

  it('sends failed or expired sweeps to an encrypted, TLS-only SQS queue, and alarms on it', () => {
    const { Ref } = resolve(s.stack.sweeps.failures.queueUrl) as { Ref: string };
    const queue = resources(s.template, 'AWS::SQS::Queue')[Ref] ?? {};
    expect(props(queue)).toMatchObject({ SqsManagedSseEnabled: true, MessageRetentionPeriod: 14 * 86400 });
    const policy = Object.values(resources(s.template, 'AWS::SQS::QueuePolicy')).map(props)[0];
    expect(json(policy)).toContain('"aws:SecureTransport":"false"');
    const alarm = Object.values(resources(s.template, 'AWS::CloudWatch::Alarm'))
      .map(props)
      .find((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && json(a.Dimensions).includes(Ref));
    expect(alarm).toMatchObject({
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [Ref, 'QueueName'] } }],
      Statistic: 'Maximum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
    expect(s.template.findOutputs('SweepFailuresQueueUrl').SweepFailuresQueueUrl?.Value).toEqual({ Ref });
  });

  it('reserves concurrency 1 for the sweeper, so two runs never overlap', () => {
    const fn = resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, 'sweeper')] ?? {};
    expect(props(fn).ReservedConcurrentExecutions).toBe(1);
  });
});

describe('fan-out queue', () => {
  const queues = () => resources(s.template, 'AWS::SQS::Queue');
  const refOf = (value: unknown) => (resolve(value) as { Ref: string }).Ref;
  const senders = FUNCTIONS.filter((f) => f.fanoutQueue);

  it('feeds the worker from an encrypted queue with a dead-letter queue after 5 receives, invisible for 6 worker timeouts', () => {
    const jobs = props(queues()[refOf(s.stack.fanout.queue.queueUrl)] ?? {});
    const dead = refOf(s.stack.fanout.deadLetters.queueUrl);
    const worker = FUNCTIONS.find((f) => f.fanoutQueue === 'work');
    expect(worker?.name).toBe('fanout-worker');
    expect(jobs).toMatchObject({
      SqsManagedSseEnabled: true,
      VisibilityTimeout: 6 * (worker?.timeoutS ?? 0),
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dead, 'Arn'] }, maxReceiveCount: 5 },
    });
    expect(props(queues()[dead] ?? {})).toMatchObject({ SqsManagedSseEnabled: true });
  });

  it('invokes the worker with batches of 10 and partial-batch failures, at most 100 at once', () => {
    const mappings = Object.values(resources(s.template, 'AWS::Lambda::EventSourceMapping')).map(props);
    expect(mappings).toEqual([
      expect.objectContaining({
        FunctionName: { Ref: functionId(s.template, 'fanout-worker') },
        EventSourceArn: { 'Fn::GetAtt': [refOf(s.stack.fanout.queue.queueUrl), 'Arn'] },
        BatchSize: 10,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 100 },
      }),
    ]);
  });

  it('lets exactly the functions of the manifest that deliver to big rooms send to it, and only SendMessage', () => {
    expect(senders.map((f) => f.name).sort()).toEqual([
      'fanout-worker',
      'http-admin-room-messages',
      'ws-default',
    ]);
    const jobsArn = resolve(s.stack.fanout.queue.queueArn);
    for (const spec of FUNCTIONS) {
      const statements = roleStatements(s.template, functionId(s.template, spec.name));
      const onJobs = statements
        .filter((st) => resourcesOf(st).some((r) => json(r) === json(jobsArn)))
        .flatMap(actionsOf);
      const polling = spec.fanoutQueue === 'work' ? ['sqs:ReceiveMessage', 'sqs:DeleteMessage'] : [];
      expect(onJobs.includes('sqs:SendMessage'), spec.name).toBe(spec.fanoutQueue !== undefined);
      for (const action of polling) expect(onJobs, spec.name).toContain(action);
      if (spec.fanoutQueue === 'send') expect(onJobs, spec.name).toEqual(['sqs:SendMessage']);
      if (!spec.fanoutQueue) expect(onJobs, spec.name).toEqual([]);
      const env = envOf(spec.name);
      expect(env.FANOUT_QUEUE_URL !== undefined, spec.name).toBe(spec.fanoutQueue !== undefined);
    }
  });

  it('alarms on the first job in the dead-letter queue and outputs its address', () => {
    const dead = refOf(s.stack.fanout.deadLetters.queueUrl);
    const alarm = Object.values(resources(s.template, 'AWS::CloudWatch::Alarm'))
      .map(props)
      .find(
        (a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && json(a.Dimensions).includes(dead),
      );
    expect(alarm).toMatchObject({ Namespace: 'AWS/SQS', Statistic: 'Maximum', Threshold: 1 });
    expect(json(alarm?.AlarmActions)).toContain('AlarmTopic');
    expect(s.template.findOutputs('FanoutDeadLetterQueueUrl').FanoutDeadLetterQueueUrl?.Value).toEqual({
      Ref: dead,
    });
  });
});

describe('concurrency', () => {
  it('reserves nothing for the other functions by default: they share the account pool', () => {
    for (const spec of FUNCTIONS.filter((f) => !isSweeper(f))) {
      const fn = resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, spec.name)] ?? {};
      expect(props(fn), spec.name).not.toHaveProperty('ReservedConcurrentExecutions');
    }
  });
});

describe('alarms', () => {
  type Alarm = Record<string, unknown> & {
    Metrics?: { Id: string; Expression?: string; MetricStat?: { Metric: Record<string, unknown> } }[];
  };
  const alarms = () =>
    Object.entries(resources(s.template, 'AWS::CloudWatch::Alarm')).map(
      ([id, r]) => [id, props(r) as Alarm] as const,
    );
  const named = (name: string) => {
    const found = alarms().filter(([id]) => new RegExp(`^Observability${name}[0-9A-F]{8}$`).test(id));
    if (found.length !== 1) throw new Error(`expected one alarm ${name}, found ${found.length}`);
    return (found[0] as readonly [string, Alarm])[1];
  };
  /** The MetricStat metrics an alarm reads (one for a plain alarm). */
  const metricsOf = (alarm: Alarm) =>
    alarm.Metrics
      ? alarm.Metrics.flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric] : []))
      : [{ Namespace: alarm.Namespace, MetricName: alarm.MetricName, Dimensions: alarm.Dimensions }];
  const expressionOf = (alarm: Alarm) => alarm.Metrics?.find((m) => m.Expression)?.Expression ?? '';
  const fnRef = (name: string) => ({ Ref: functionId(s.template, name) });
  const groupAlarms = (prefix: string) =>
    alarms().filter(([id]) => new RegExp(`^Observability${prefix}\\d*[0-9A-F]{8}$`).test(id));

  it('never reads more than 10 metrics in one alarm (CloudWatch refuses more)', () => {
    for (const [id, alarm] of alarms()) expect(metricsOf(alarm).length, id).toBeLessThanOrEqual(10);
  });

  it.each(['Passwords', 'Handshake', 'Messages', 'Sweeper', 'Http'])(
    "watches Lambda's own Errors of every %s function, whatever its logs say",
    (title) => {
      const group = groupAlarms(`${title}Errors`);
      expect(group.length).toBeGreaterThan(0);
      const read = group.flatMap(([, a]) => metricsOf(a)).filter((m) => m.Namespace === 'AWS/Lambda');
      for (const m of read) expect(m.MetricName).toBe('Errors');
      const members = FUNCTIONS.filter((f) => json(read).includes(json(fnRef(f.name))));
      expect(members.length).toBe(read.length);
      for (const [, alarm] of group) expect(alarm.Threshold).toBe(1);
    },
  );

  it('covers every function of the manifest exactly once in Errors, Throttles and near-timeout alarms', () => {
    for (const kind of ['Errors', 'Throttles', 'NearTimeout']) {
      const read = alarms()
        .filter(
          ([id]) => /^Observability(Passwords|Handshake|Messages|Sweeper|Http)/.test(id) && id.includes(kind),
        )
        .flatMap(([, a]) => metricsOf(a))
        .filter((m) => m.Namespace === 'AWS/Lambda');
      const expected = FUNCTIONS.filter((f) => !(kind === 'Throttles' && isSweeper(f)));
      for (const spec of expected) {
        expect(
          read.filter(
            (m) => json(m.Dimensions) === json([{ Name: 'FunctionName', Value: fnRef(spec.name) }]),
          ),
          `${kind} ${spec.name}`,
        ).toHaveLength(1);
      }
      expect(read).toHaveLength(expected.length);
    }
  });

  it("subtracts the authorizer's deliberate 401s (it throws Unauthorized) from its Errors", () => {
    const alarm = named('HandshakeErrors');
    const ids = Object.fromEntries(
      (alarm.Metrics ?? []).flatMap((m) => (m.MetricStat ? [[json(m.MetricStat.Metric), m.Id]] : [])),
    );
    const errors =
      ids[
        json({
          Dimensions: [{ Name: 'FunctionName', Value: fnRef('ws-authorizer') }],
          MetricName: 'Errors',
          Namespace: 'AWS/Lambda',
        })
      ];
    const unauthorized = (alarm.Metrics ?? []).find(
      (m) => m.MetricStat?.Metric.MetricName === 'AuthorizerUnauthorized',
    )?.Id;
    expect(errors && unauthorized).toBeTruthy();
    expect(expressionOf(alarm)).toContain(`(FILL(${errors}, 0) - FILL(${unauthorized}, 0))`);
    const filter = Object.values(resources(s.template, 'AWS::Logs::MetricFilter'))
      .map(props)
      .find((f) => json(f).includes('"AuthorizerUnauthorized"'));
    expect(filter?.FilterPattern).toBe(
      '{ ($.level = "ERROR") && ($.message.errorMessage = "Unauthorized") }',
    );
    expect(filter?.LogGroupName).toEqual(
      resolve(s.stack.functions.get('ws-authorizer').functionLogGroup.logGroupName),
    );
  });

  it('alarms on throttles of each group but the sweeper, whose single slot is deliberate', () => {
    for (const title of ['Passwords', 'Handshake', 'Messages', 'Http']) {
      for (const [, alarm] of groupAlarms(`${title}Throttles`)) {
        for (const m of metricsOf(alarm)) expect(m.MetricName).toBe('Throttles');
      }
      expect(groupAlarms(`${title}Throttles`).length, title).toBeGreaterThan(0);
    }
    expect(groupAlarms('SweeperThrottles')).toEqual([]);
  });

  it('alarms when the slowest run reaches 80% of the timeout', () => {
    expect(named('PasswordsNearTimeout').Threshold).toBe(8000);
    expect(named('SweeperNearTimeout')).toMatchObject({
      Threshold: 96_000,
      Statistic: 'Maximum',
      MetricName: 'Duration',
    });
    for (const [, alarm] of groupAlarms('HttpNearTimeout')) {
      expect(expressionOf(alarm)).toMatch(/^MAX\(\[/);
      for (const m of alarm.Metrics ?? [])
        if (m.MetricStat) expect(m.MetricStat).toMatchObject({ Stat: 'Maximum' });
    }
  });

  it('alarms on DynamoDB throttling and system errors of every table, for each operation in use', () => {
    for (const key of TABLE_KEYS) {
      const table = resolve(s.stack.storage.tables[key].tableName);
      const name = `${key[0]?.toUpperCase()}${key.slice(1)}TableErrors`;
      const read = groupAlarms(name).flatMap(([, a]) => metricsOf(a));
      const names = read.map(
        (m) =>
          `${m.MetricName}${json(m.Dimensions).includes('Operation') ? `:${(m.Dimensions as { Name: string; Value: string }[]).find((d) => d.Name === 'Operation')?.Value}` : ''}`,
      );
      const used = [...new Set(FUNCTIONS.flatMap((f) => f.tables[key] ?? []))].sort();
      expect(names.sort(), key).toEqual(
        used.flatMap((op) => [`ThrottledRequests:${op}`, `SystemErrors:${op}`]).sort(),
      );
      for (const m of read) {
        expect(m.Namespace).toBe('AWS/DynamoDB');
        expect(
          (m.Dimensions as { Name: string; Value: unknown }[]).find((d) => d.Name === 'TableName')?.Value,
        ).toEqual(table);
      }
    }
  });

  it("alarms on WebSocket 5xx from the access log, not on IntegrationError (the connection cap's 403 counts there)", () => {
    expect(alarms().some(([id]) => id.includes('IntegrationErrors'))).toBe(false);
    expect(json(alarms().map(([, a]) => metricsOf(a)))).not.toContain('"IntegrationError"');
    const filter = Object.values(resources(s.template, 'AWS::Logs::MetricFilter'))
      .map(props)
      .find((f) => json(f).includes('"WebSocketServerErrors"'));
    expect(filter?.FilterPattern).toBe('{ $.status = "5*" }');
    expect(filter?.LogGroupName).toEqual(resolve(s.stack.webSocket.accessLogs.logGroupName));
    expect(named('WebSocketServerErrors').Threshold).toBe(5);
    expect(metricsOf(named('WebSocketServerErrors'))).toEqual([
      { MetricName: 'WebSocketServerErrors', Namespace: s.stack.observability.namespace },
    ]);
  });

  it('saves an errors query that reads the JSON log format: message.errorType, platform.report status', () => {
    const query = Object.values(resources(s.template, 'AWS::Logs::QueryDefinition'))
      .map(props)
      .find((q) => String(q.Name).endsWith('/errors'));
    const text = String(query?.QueryString);
    expect(text).toContain('message.errorType');
    expect(text).toContain('message.errorMessage');
    expect(text).toContain('type = "platform.report" and record.status != "success"');
    expect(text).toContain('message.errorMessage != "Unauthorized"');
    expect(text).not.toMatch(/fields[^|]*[ ,]errorType/);
  });
});

describe('observability', () => {
  it('counts audit events and errors in every function log group', () => {
    const filters = Object.values(resources(s.template, 'AWS::Logs::MetricFilter'));
    const functionCount = FUNCTIONS.length + 1;
    // Per function: audit events and our own error lines; the authorizer's deliberate 401s;
    // the WebSocket access log's 5xx.
    expect(filters).toHaveLength(functionCount * 2 + 2);
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
    expect(errors).toHaveLength(functionCount);
    // Ours only: the runtime's "ERROR" lines include every deliberate 401 of the authorizer,
    // and crashes are counted by Lambda's own Errors metric (the group alarms).
    for (const filter of errors) expect(props(filter).FilterPattern).toBe('{ $.level = "error" }');
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
    expect(named('/room access')?.QueryString).toMatch(/fields .*room, reason[\s\S]*room\.denied/);
    expect(named('/top senders')?.QueryString).toMatch(/\$default[\s\S]*by username, principal/);
    expect(named('/delivery failures')?.QueryString).toMatch(/delivery\.failed[\s\S]*sum\(failed\)/);
    expect(named('/top senders')?.LogGroupNames).toEqual([
      resolve(s.stack.webSocket.accessLogs.logGroupName),
    ]);
    expect(named('/failed logins by IP')?.LogGroupNames).toHaveLength(FUNCTIONS.length + 1);
  });

  it('names only saved queries in the alarms that tell the operator which query to run', () => {
    const saved = Object.values(resources(s.template, 'AWS::Logs::QueryDefinition')).map((q) =>
      String(props(q).Name).split('/').pop(),
    );
    const named = Object.values(resources(s.template, 'AWS::CloudWatch::Alarm'))
      .map((a) => String(props(a).AlarmDescription ?? ''))
      .flatMap((text) => [...text.matchAll(/"([^"]+)" query/g)].map((m) => m[1]));
    expect(named.length).toBeGreaterThan(5);
    for (const name of named) expect(saved).toContain(name);
  });

  it('gives the two APIs distinct names', () => {
    const names = Object.values(resources(s.template, 'AWS::ApiGatewayV2::Api')).map((a) => props(a).Name);
    expect(names.sort()).toEqual(['Test-http', 'Test-ws']);
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
    // cdk.json's example origin is still in place here, so its warning is the one annotation.
    const { 'Construct Annotations': annotations = [], ...violations } = validationViolations(s.assembly);
    expect(violations).toEqual({});
    expect(annotations).toEqual([
      expect.objectContaining({
        ruleName: 'Annotation::jwt-realtime:placeholder-origin',
        severity: 'warning',
      }),
    ]);
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
      'AwsSolutions-L1',
      'AwsSolutions-SMG4',
      'AwsSolutions-SQS3',
    ];
    for (const rule of rules) expect(reviewed, rule).toContain(rule);
    for (const [id, reason] of acknowledged) expect(reason.length, id).toBeGreaterThan(80);
    const iam5 = [...acknowledged.keys()].filter((id) => id.includes('IAM5'));
    for (const id of iam5) expect(id).toMatch(/@connections\/\*\]$/);
  });
});
