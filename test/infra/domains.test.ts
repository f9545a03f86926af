import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { RealtimeStack } from '../../lib/realtime-stack.ts';
import { WS_STAGE } from '../../lib/websocket-api.ts';
import {
  functionId,
  makeApp,
  props,
  resources,
  type Synthesized,
  synth,
  validationViolations,
} from './support.ts';

const CERTIFICATE = 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789';
const DOMAINS = {
  wsDomainName: 'ws.chat.example.org',
  httpDomainName: 'API.chat.example.org',
  certificateArn: CERTIFICATE,
  allowedOrigins: 'https://chat.example.org',
};

let s: Synthesized;
const resolve = (value: unknown) => s.stack.resolve(value) as unknown;
const json = (value: unknown) => JSON.stringify(value);

beforeAll(() => {
  s = synth({ context: DOMAINS });
}, 120_000);

describe('custom domains', () => {
  it('creates a regional API Gateway domain name for each API, TLS 1.2, with the certificate', () => {
    const names = Object.values(resources(s.template, 'AWS::ApiGatewayV2::DomainName')).map(props);
    expect(names.map((n) => n.DomainName).sort()).toEqual(['api.chat.example.org', 'ws.chat.example.org']);
    for (const name of names) {
      expect(name.DomainNameConfigurations).toEqual([
        { CertificateArn: CERTIFICATE, EndpointType: 'REGIONAL', SecurityPolicy: 'TLS_1_2' },
      ]);
    }
  });

  it('maps each domain at its root to its own API and stage', () => {
    const mappings = Object.values(resources(s.template, 'AWS::ApiGatewayV2::ApiMapping')).map(props);
    expect(mappings).toHaveLength(2);
    const of = (api: string) => mappings.find((m) => json(m.ApiId) === json(resolve(api)));
    expect(of(s.stack.http.api.apiId)).toEqual({
      ApiId: resolve(s.stack.http.api.apiId),
      DomainName: resolve(s.stack.http.domainName?.name),
      Stage: '$default',
    });
    expect(of(s.stack.webSocket.api.apiId)).toEqual({
      ApiId: resolve(s.stack.webSocket.api.apiId),
      DomainName: resolve(s.stack.webSocket.domainName?.name),
      Stage: WS_STAGE,
    });
  });

  it('outputs both URLs on the domains, the execute-api ones, and the DNS targets', () => {
    const outputs = s.template.findOutputs('*');
    expect(outputs.HttpApiUrl?.Value).toBe('https://api.chat.example.org');
    expect(outputs.JwksUrl?.Value).toBe('https://api.chat.example.org/.well-known/jwks.json');
    expect(outputs.WebSocketUrl?.Value).toBe('wss://ws.chat.example.org');
    expect(outputs.HttpExecuteApiUrl?.Value).toEqual(resolve(s.stack.http.api.apiEndpoint));
    expect(outputs.WebSocketExecuteApiUrl?.Value).toEqual(resolve(s.stack.webSocket.stage.url));
    expect(outputs.HttpDomainTarget?.Value).toEqual(resolve(s.stack.http.domainName?.regionalDomainName));
    expect(outputs.WebSocketDomainTarget?.Value).toEqual(
      resolve(s.stack.webSocket.domainName?.regionalDomainName),
    );
    expect(outputs.WebSocketDomainHostedZoneId?.Value).toEqual(
      resolve(s.stack.webSocket.domainName?.regionalHostedZoneId),
    );
  });

  it('takes the default token issuer from the HTTP domain', () => {
    const login = resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, 'http-login')] ?? {};
    const env = (props(login).Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.TOKEN_ISSUER).toBe('https://api.chat.example.org');
    expect(s.template.findOutputs('TokenIssuer').TokenIssuer?.Value).toBe('https://api.chat.example.org');
  });

  it('keeps the execute-api callback URL for @connections', () => {
    const fn = resources(s.template, 'AWS::Lambda::Function')[functionId(s.template, 'ws-default')] ?? {};
    const env = (props(fn).Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env.WS_MANAGEMENT_ENDPOINT).toEqual(resolve(s.stack.webSocket.stage.callbackUrl));
    expect(json(env.WS_MANAGEMENT_ENDPOINT)).toContain('.execute-api.');
    expect(json(env.WS_MANAGEMENT_ENDPOINT)).not.toContain('chat.example.org');
  });

  it('passes cdk-nag and the CloudFormation validator, without the example-origin warning', () => {
    expect(validationViolations(s.assembly)).toEqual({});
  });

  it('creates no domain, mapping or DNS output without the context keys', () => {
    const plain = Template.fromStack(new RealtimeStack(makeApp(), 'Plain'));
    plain.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
    plain.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 0);
    expect(Object.keys(plain.findOutputs('*')).filter((o) => /Domain|ExecuteApi/.test(o))).toEqual([]);
  });

  it('maps one API alone when only its domain is given', () => {
    const only = Template.fromStack(
      new RealtimeStack(
        makeApp({ context: { wsDomainName: 'ws.example.org', certificateArn: CERTIFICATE } }),
        'Ws',
      ),
    );
    expect(
      Object.values(resources(only, 'AWS::ApiGatewayV2::DomainName')).map((d) => props(d).DomainName),
    ).toEqual(['ws.example.org']);
    expect(only.findOutputs('WebSocketUrl').WebSocketUrl?.Value).toBe('wss://ws.example.org');
    expect(json(only.findOutputs('TokenIssuer').TokenIssuer?.Value)).toContain('ApiEndpoint');
  });
});

describe('custom domain settings', () => {
  const build = (context: Record<string, unknown>, region?: string) =>
    new RealtimeStack(
      makeApp({ context }),
      'Bad',
      region ? { env: { account: '123456789012', region } } : {},
    );

  it.each([
    [{ wsDomainName: 'ws.example.org' }, /certificateArn: required with wsDomainName or httpDomainName/],
    [
      { httpDomainName: 'https://api.example.org', certificateArn: CERTIFICATE },
      /httpDomainName: must be a host name/,
    ],
    [{ wsDomainName: 'ws', certificateArn: CERTIFICATE }, /wsDomainName: must be a host name/],
    [
      { wsDomainName: 'a.example.org', httpDomainName: 'A.example.org', certificateArn: CERTIFICATE },
      /two different names/,
    ],
    [
      { wsDomainName: 'ws.example.org', certificateArn: 'arn:aws:iam::123456789012:server-certificate/x' },
      /certificateArn: must be an ACM certificate ARN/,
    ],
    [{ certificateArn: CERTIFICATE }, /certificateArn: set wsDomainName or httpDomainName too/],
  ])('stops synth on %j', (context, message) => {
    expect(() => build(context)).toThrow(message);
  });

  it("refuses a certificate outside the stack's region (regional domains need it there)", () => {
    expect(() => build({ wsDomainName: 'ws.example.org', certificateArn: CERTIFICATE }, 'us-east-1')).toThrow(
      /certificateArn: must be in the stack's region us-east-1/,
    );
    expect(() =>
      build({ wsDomainName: 'ws.example.org', certificateArn: CERTIFICATE }, 'eu-west-1'),
    ).not.toThrow();
  });
});
