import { describe, expect, it } from 'vitest';
import { credentialOf, handshakeOf } from '../../../lambdas/edge/ws-authorizer.ts';
import type { WsAuthorizerEvent } from '../../../lambdas/edge/ws-types.ts';

function event(parts: {
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
  query?: Record<string, string[]>;
}): WsAuthorizerEvent {
  return {
    type: 'REQUEST',
    methodArn: 'arn:aws:execute-api:eu-west-1:000000000000:api/local/$connect',
    headers: parts.headers ?? {},
    multiValueHeaders: parts.multiValueHeaders ?? {},
    queryStringParameters: Object.fromEntries(
      Object.entries(parts.query ?? {}).map(([k, v]) => [k, v.at(-1)]),
    ),
    multiValueQueryStringParameters: parts.query ?? {},
    requestContext: { connectionId: 'c-1', identity: { sourceIp: '203.0.113.7' } },
  } as unknown as WsAuthorizerEvent;
}

describe('credentialOf', () => {
  it.each([
    [
      'the subprotocol pair',
      { headers: { 'Sec-WebSocket-Protocol': 'jwt, t1' } },
      { kind: 'protocol', token: 't1' },
    ],
    ['one ?token=', { query: { token: ['t2'] } }, { kind: 'query', token: 't2' }],
    ['two ?token= as none', { query: { token: ['a', 'b'] } }, { kind: 'query', token: '' }],
    ['one ?ticket=', { query: { ticket: ['k1'] } }, { kind: 'ticket', ticket: 'k1' }],
    [
      'a Bearer header in any casing',
      { headers: { AUTHORIZATION: 'bearer  t3' } },
      { kind: 'header', token: 't3' },
    ],
    [
      'a Basic header as an empty token',
      { headers: { authorization: 'Basic abc' } },
      { kind: 'header', token: '' },
    ],
    [
      'the subprotocol before the query',
      { headers: { 'sec-websocket-protocol': 'jwt,t4' }, query: { token: ['q'] } },
      { kind: 'protocol', token: 't4' },
    ],
  ])('reads %s', (_name, parts, expected) => {
    expect(credentialOf(event(parts))).toEqual(expected);
  });

  it('finds nothing in a bare handshake, or in `jwt` offered alone', () => {
    expect(credentialOf(event({}))).toBeUndefined();
    expect(credentialOf(event({ headers: { 'sec-websocket-protocol': 'jwt' } }))).toBeUndefined();
  });
});

describe('handshakeOf', () => {
  it('splits every Origin value and keeps the IP and the connection', () => {
    const input = handshakeOf(
      event({ multiValueHeaders: { Origin: ['https://a.example, https://b.example'] } }),
    );
    expect(input.origins).toEqual(['https://a.example', 'https://b.example']);
    expect(input.ip).toBe('203.0.113.7');
    expect(input.connectionId).toBe('c-1');
  });
});
