import { readFileSync } from 'node:fs';
import { type App, CfnResource, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { envName, SETTING_NAMES } from '../../lambdas/core/settings.ts';
import { FUNCTIONS, type FunctionSpec } from '../../lambdas/functions.ts';
import { DEPLOYMENT_OPTIONS } from '../../lib/config.ts';
import { REPO_ROOT } from '../../lib/paths.ts';
import { RealtimeStack } from '../../lib/realtime-stack.ts';
import { functionId, makeApp, props, resources, roleStatements } from './support.ts';

/** Builds the stack without validation plugins: these tests look at what settings and manifests become. */
function build(context: Record<string, unknown> = {}, functions?: readonly FunctionSpec[]) {
  const app = makeApp({ context });
  const stack = new RealtimeStack(app, 'Config', {
    functions,
    // Extra manifest entries in these tests reuse a real handler file.
    entryFor: (spec) =>
      `${REPO_ROOT}/lambdas/${FUNCTIONS.some((f) => f.name === spec.name) ? spec.name : 'http-health'}.ts`,
  });
  return { stack, template: Template.fromStack(stack) };
}

const envOf = (template: Template, name: string) =>
  (
    props(resources(template, 'AWS::Lambda::Function')[functionId(template, name)] ?? {}).Environment as {
      Variables: Record<string, unknown>;
    }
  ).Variables;

describe('settings from CDK context', () => {
  // The file's first synth loads aws-cdk-lib: 25 s alone on a busy 2-core machine, as stack.test.ts allows for.
  it('passes context values to every function, normalized', { timeout: 120_000 }, () => {
    const { template } = build({
      rateLimitMax: 25,
      allowedOrigins: 'https://A.example.com, https://b.example.com:8443',
      messageEncryption: true,
      tokenIssuer: 'https://auth.example.com',
      tokenAudience: 'urn:example:clients',
    });
    const env = envOf(template, 'ws-default');
    expect(env.RATE_LIMIT_MAX).toBe('25');
    expect(env.ALLOWED_ORIGINS).toBe('https://a.example.com,https://b.example.com:8443');
    expect(env.MESSAGE_ENCRYPTION).toBe('true');
    expect(env.TOKEN_ISSUER).toBe('https://auth.example.com');
    expect(env.TOKEN_AUDIENCE).toBe('urn:example:clients');
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', {
      CorsConfiguration: { AllowOrigins: ['https://a.example.com', 'https://b.example.com:8443'] },
    });
  });

  it.each([
    [{ rateLimitMax: 'ten' }, /rateLimitMax \(RATE_LIMIT_MAX\): must be a whole number/],
    [{ allowedOrigins: '' }, /allowedOrigins \(ALLOWED_ORIGINS\): list at least one origin/],
    [{ allowedOrigins: 'https://app.example.com/path' }, /allowedOrigins/],
    [{ oidcIssuer: 'http://idp.example.com' }, /oidcIssuer \(OIDC_ISSUER\): must use https/],
    [{ sweepIntervalS: 90 }, /sweepIntervalS \(SWEEP_INTERVAL_S\): must be a whole number of minutes/],
    [{ logRetentionDays: 10 }, /logRetentionDays: must be one of CloudWatch's retention periods/],
    [{ alarmEmail: 'not-an-address' }, /alarmEmail: must be an e-mail address/],
    [{ throttleBurst: -1 }, /throttleBurst: must be a whole number/],
    [{ apiGatewayAccountRole: 'maybe' }, /apiGatewayAccountRole: must be true or false/],
    [
      { reservedConcurrencyPasswords: 0 },
      /reservedConcurrencyPasswords: must be a whole number between 1 and 10000/,
    ],
    [{ reservedConcurrencyHandshake: 'lots' }, /reservedConcurrencyHandshake: must be a whole number/],
  ])('stops synth on bad context %j, naming the key', (context, message) => {
    expect(() => build(context)).toThrow(message);
  });

  it('reports every bad setting at once', () => {
    expect(() => build({ rateLimitMax: 0, clockSkewS: 'x' })).toThrow(/rateLimitMax[\s\S]*clockSkewS/);
  });

  it('accepts a deployment without allowed origins when allowMissingOrigin is set, and then has no CORS', () => {
    const { template } = build({ allowedOrigins: '', allowMissingOrigin: true });
    const [api] = Object.values(resources(template, 'AWS::ApiGatewayV2::Api')).filter(
      (r) => props(r).ProtocolType === 'HTTP',
    );
    expect(props(api ?? {})).not.toHaveProperty('CorsConfiguration');
  });

  it('rotates keys through the keyRotation key and retires them after the token lifetime', () => {
    const { template } = build({ keyRotation: '2025-06-01', accessTokenTtlS: 600, clockSkewS: 10 });
    template.hasResourceProperties('Custom::SigningKeys', { Rotation: '2025-06-01', RetireAfterS: '1210' });
  });

  it('applies retention, throttling, the sweep schedule and the alarm e-mail from context', () => {
    const { template } = build({
      logRetentionDays: 90,
      throttleRatePerS: 50,
      throttleBurst: 80,
      sweepIntervalS: 120,
      alarmEmail: 'ops@example.com',
      apiGatewayAccountRole: false,
    });
    for (const group of Object.values(resources(template, 'AWS::Logs::LogGroup'))) {
      expect(props(group).RetentionInDays).toBe(90);
    }
    for (const stage of Object.values(resources(template, 'AWS::ApiGatewayV2::Stage'))) {
      expect(props(stage).DefaultRouteSettings).toEqual({
        ThrottlingBurstLimit: 80,
        ThrottlingRateLimit: 50,
      });
    }
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(2 minutes)' });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    template.resourceCountIs('AWS::ApiGateway::Account', 0);
  });
});

describe('reserved concurrency', () => {
  const reserved = (template: Template, name: string) =>
    props(resources(template, 'AWS::Lambda::Function')[functionId(template, name)] ?? {})
      .ReservedConcurrentExecutions;

  it('reserves the given concurrency for each function of a group, and the sweeper always 1', () => {
    const { template } = build({
      reservedConcurrencyPasswords: 20,
      reservedConcurrencyHandshake: 200,
      reservedConcurrencyMessages: '300',
      reservedConcurrencyHttp: 50,
    });
    expect(reserved(template, 'http-login')).toBe(20);
    expect(reserved(template, 'http-register')).toBe(20);
    expect(reserved(template, 'ws-authorizer')).toBe(200);
    expect(reserved(template, 'ws-connect')).toBe(200);
    expect(reserved(template, 'ws-default')).toBe(300);
    expect(reserved(template, 'ws-disconnect')).toBe(300);
    expect(reserved(template, 'http-refresh')).toBe(50);
    expect(reserved(template, 'http-token-exchange')).toBe(50);
    expect(reserved(template, 'sweeper')).toBe(1);
  });

  it('caps only the group it is given: a login flood is held while the handshake shares the pool', () => {
    const { template } = build({ reservedConcurrencyPasswords: 20 });
    expect(reserved(template, 'http-login')).toBe(20);
    expect(reserved(template, 'ws-authorizer')).toBeUndefined();
    expect(reserved(template, 'ws-default')).toBeUndefined();
  });
});

describe('the example allowedOrigins of cdk.json', () => {
  const warnings = (stack: RealtimeStack) =>
    Annotations.fromStack(stack).findWarning(
      '*',
      Match.stringLikeRegexp('allowedOrigins includes the example'),
    );

  it('warns at synth and deploy while it is still in place', () => {
    expect(warnings(build().stack)).toHaveLength(1);
  });

  it('stays quiet once the origins are real', () => {
    expect(warnings(build({ allowedOrigins: 'https://chat.example.org' }).stack)).toHaveLength(0);
  });
});

describe('the function manifest', () => {
  const extra: FunctionSpec = {
    name: 'admin-probe',
    description: 'GET /admin/probe',
    httpRoutes: ['GET /admin/probe', 'DELETE /admin/probe/{id}'],
    tables: { connections: ['Query'], users: ['GetItem'] },
    keys: 'verify',
    manageConnections: true,
    memoryMb: 512,
  };

  it('turns a new entry into a function with its routes and exactly its grants', () => {
    const { template } = build({}, [...FUNCTIONS, extra]);
    const id = functionId(template, 'admin-probe');
    expect(props(resources(template, 'AWS::Lambda::Function')[id] ?? {}).MemorySize).toBe(512);
    const routeKeys = Object.values(resources(template, 'AWS::ApiGatewayV2::Route')).map(
      (r) => props(r).RouteKey,
    );
    expect(routeKeys).toEqual(expect.arrayContaining(['GET /admin/probe', 'DELETE /admin/probe/{id}']));
    const statements = roleStatements(template, id);
    const actions = new Set(statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
    expect([...actions].sort()).toEqual([
      'dynamodb:GetItem',
      'dynamodb:Query',
      'execute-api:ManageConnections',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'secretsmanager:GetSecretValue',
    ]);
    const queried = JSON.stringify(
      statements.filter((s) => JSON.stringify(s.Action).includes('dynamodb:Query')),
    );
    expect(queried).toContain('/index/byUser');
    expect(queried).toContain('/index/bySid');
    expect(
      JSON.stringify(statements.filter((s) => JSON.stringify(s.Action).includes('GetItem'))),
    ).not.toContain('/index/');
  });

  it('schedules a function marked schedule: sweep', () => {
    const sweep: FunctionSpec = {
      name: 'janitor',
      description: 'sweeps',
      tables: {},
      keys: 'none',
      schedule: 'sweep',
    };
    const { template } = build({}, [...FUNCTIONS, sweep]);
    template.resourceCountIs('AWS::Events::Rule', 2);
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [
        {
          Arn: { 'Fn::GetAtt': [functionId(template, 'janitor'), 'Arn'] },
          Id: 'Target0',
          RetryPolicy: {
            MaximumEventAgeInSeconds: 300,
            MaximumRetryAttempts: 0,
          },
        },
      ],
    });
  });

  it('splits a group over several alarms rather than read more than 10 metrics in one', () => {
    const more: FunctionSpec[] = Array.from({ length: 12 }, (_, i) => ({
      ...extra,
      name: `admin-extra-${i}`,
      httpRoutes: [`GET /admin/extra/${i}`],
    }));
    const { template } = build({}, [...FUNCTIONS, ...more]);
    const alarms = Object.entries(resources(template, 'AWS::CloudWatch::Alarm'));
    const httpErrors = alarms.filter(([id]) => /^ObservabilityHttpErrors\d[0-9A-F]{8}$/.test(id));
    const httpCount = [...FUNCTIONS, ...more].filter((f) => f.httpRoutes?.length && !f.argon2).length;
    expect(httpErrors).toHaveLength(Math.ceil(httpCount / 10));
    let read = 0;
    for (const [id, alarm] of alarms) {
      const stats = ((props(alarm).Metrics ?? []) as { MetricStat?: unknown }[]).filter((m) => m.MetricStat);
      expect(stats.length, id).toBeLessThanOrEqual(10);
      if (httpErrors.some(([h]) => h === id)) read += stats.length;
    }
    expect(read).toBe(httpCount);
  });

  it('refuses a $connect route without an authorizer', () => {
    const withoutAuthorizer = FUNCTIONS.filter((f) => !f.wsRoutes?.includes('authorizer'));
    expect(() => build({}, withoutAuthorizer)).toThrow(/\$connect route needs an authorizer/);
  });

  it('refuses a route served by two functions', () => {
    const twin: FunctionSpec = { ...extra, name: 'login-twin', httpRoutes: ['POST /auth/login'] };
    expect(() => build({}, [...FUNCTIONS, twin])).toThrow(/HTTP route POST \/auth\/login is served by both/);
  });

  it('refuses a malformed route key', () => {
    const bad: FunctionSpec = { ...extra, httpRoutes: ['login'] };
    expect(() => build({}, [...FUNCTIONS, bad])).toThrow(/"login" is not "METHOD \/path"/);
  });
});

describe('the CloudFormation validator bundled with aws-cdk-lib', () => {
  it('runs at synth with cdk.json context and fails a template with a schema error', () => {
    // The canary: the stack's clean report means something only if the validator is active.
    const app: App = makeApp();
    const stack = new Stack(app, 'Canary');
    new CfnResource(stack, 'Queue', { type: 'AWS::SQS::Queue', properties: { VisibilityTimeout: 'soon' } });
    expect(() => app.synth()).toThrow(/CloudFormation Validate|VisibilityTimeout/);
  });
});

describe('docs/deploy.md', () => {
  const doc = readFileSync(`${REPO_ROOT}/docs/deploy.md`, 'utf8');

  it('lists every context key: each setting with its variable, each deployment option', () => {
    const row = (...cells: string[]) =>
      new RegExp(`^\\|\\s*${cells.map((c) => `\`${c}\``).join('\\s*\\|\\s*')}\\s*\\|`, 'm');
    for (const name of SETTING_NAMES) expect(doc, name).toMatch(row(name, envName(name)));
    for (const name of [...Object.keys(DEPLOYMENT_OPTIONS), 'stackName'])
      expect(doc, name).toMatch(row(name));
  });

  it('keeps the Cost heading for the benchmark work', () => {
    expect(doc).toMatch(/^## Cost$/m);
  });
});
