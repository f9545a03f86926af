import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import type { AccessClaims } from '../lambdas/core/tokens.ts';
import { authorizerContext } from '../lambdas/edge/ws.ts';
import type { WsAuthorizerEvent, WsProxyEvent } from '../lambdas/edge/ws-types.ts';
import {
  buildAuthorizerEvent,
  buildConnectEvent,
  buildDisconnectEvent,
  buildMessageEvent,
  type ConnectionInfo,
  newAwsId,
  type WsAuthorizerContext,
} from '../local/ws-events.ts';

/**
 * The events API Gateway sends, built with the local gateway's own builders (local/ws-events.ts),
 * so the handlers see here exactly what they see behind the local gateway.
 */
export const ORIGIN = 'http://localhost:3000';

export function connectionInfo(connectionId = newAwsId(), ip = '203.0.113.7'): ConnectionInfo {
  return {
    connectionId,
    connectedAt: Date.now(),
    identity: { sourceIp: ip, userAgent: 'bench' },
    domainName: 'bench.execute-api.local',
    stage: 'bench',
    apiId: 'bench',
  };
}

export function authorizerEvent(info: ConnectionInfo, token: string): WsAuthorizerEvent {
  const headers = {
    Host: info.domainName,
    Origin: ORIGIN,
    'Sec-WebSocket-Protocol': `jwt, ${token}`,
    'Sec-WebSocket-Version': '13',
  };
  const multiValueHeaders = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
  return buildAuthorizerEvent(info, { headers, multiValueHeaders }, {}, newAwsId(), Date.now());
}

/** The frozen authorizer context of every later event, as API Gateway hands it over (strings). */
export function contextOf(claims: AccessClaims): WsAuthorizerContext {
  const context = authorizerContext(claims);
  return {
    principalId: claims.sub,
    ...Object.fromEntries(Object.entries(context).map(([k, v]) => [k, String(v)])),
  };
}

export function connectEvent(info: ConnectionInfo, claims: AccessClaims): WsProxyEvent {
  const headers = { Host: info.domainName, Origin: ORIGIN, 'Sec-WebSocket-Protocol': 'jwt, redacted' };
  const multiValueHeaders = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
  return buildConnectEvent(
    info,
    { headers, multiValueHeaders },
    {},
    contextOf(claims),
    newAwsId(),
    Date.now(),
  );
}

export function messageEvent(info: ConnectionInfo, claims: AccessClaims, frame: unknown): WsProxyEvent {
  return buildMessageEvent(
    info,
    {},
    contextOf(claims),
    Buffer.from(JSON.stringify(frame)),
    false,
    { requestId: newAwsId(), messageId: newAwsId() },
    Date.now(),
  );
}

export function disconnectEvent(info: ConnectionInfo, claims: AccessClaims): WsProxyEvent {
  return buildDisconnectEvent(
    info,
    {},
    contextOf(claims),
    { code: 1000, reason: '' },
    newAwsId(),
    Date.now(),
  );
}

/** An HTTP API payload 2.0 event. */
export function httpEvent(
  routeKey: string,
  options: { body?: unknown; token?: string; ip?: string } = {},
): APIGatewayProxyEventV2 {
  const [method = 'GET', path = '/'] = routeKey.split(' ');
  const headers: Record<string, string> = { host: 'bench.execute-api.local', 'user-agent': 'bench' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey,
    rawPath: path,
    rawQueryString: '',
    headers,
    requestContext: {
      accountId: '000000000000',
      apiId: 'bench',
      domainName: 'bench.execute-api.local',
      domainPrefix: 'bench',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: options.ip ?? '203.0.113.7', userAgent: 'bench' },
      requestId: newAwsId(),
      routeKey,
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    isBase64Encoded: false,
  };
}
