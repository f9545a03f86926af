import type { Audit } from '../core/audit.ts';
import { isAppError } from '../core/errors.ts';
import { normalizeIp } from '../core/ip.ts';
import { errorFrame } from '../core/protocol.ts';
import type { EncryptedFrame, RequestId, ServerFrame } from '../core/wire.ts';
import type { AuthorizerResult, WsAuthorizerEvent, WsProxyEvent, WsProxyResult } from './ws-types.ts';

/** Every value of a header, whatever the casing of its name, from both header maps. */
export function headerValues(
  event: { headers?: Record<string, string> | null; multiValueHeaders?: Record<string, string[]> | null },
  name: string,
): string[] {
  const wanted = name.toLowerCase();
  const multi = Object.entries(event.multiValueHeaders ?? {}).filter(([k]) => k.toLowerCase() === wanted);
  if (multi.length > 0) return multi.flatMap(([, v]) => v);
  return Object.entries(event.headers ?? {})
    .filter(([k]) => k.toLowerCase() === wanted)
    .map(([, v]) => v);
}

export function queryValues(
  event: {
    queryStringParameters?: Record<string, string> | null;
    multiValueQueryStringParameters?: Record<string, string[]> | null;
  },
  name: string,
): string[] {
  const multi = event.multiValueQueryStringParameters?.[name];
  if (multi) return multi;
  const single = event.queryStringParameters?.[name];
  return single === undefined ? [] : [single];
}

/** The subprotocols a client offered, in order. */
export function offeredProtocols(event: Parameters<typeof headerValues>[0]): string[] {
  return headerValues(event, 'sec-websocket-protocol')
    .flatMap((v) => v.split(','))
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

export function sourceIp(event: { requestContext: { identity?: { sourceIp?: string } } }): string {
  return normalizeIp(event.requestContext.identity?.sourceIp) ?? '';
}

/** API Gateway answers 401 to a handshake when the authorizer throws exactly this. */
export function unauthorized(): Error {
  return new Error('Unauthorized');
}

export function policy(
  effect: 'Allow' | 'Deny',
  event: WsAuthorizerEvent,
  principalId: string,
  context?: Record<string, string | number | boolean>,
): AuthorizerResult {
  return {
    principalId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: event.methodArn }],
    },
    ...(context ? { context } : {}),
  };
}

/** A reply sent back on the caller's socket by the `$default` route response. */
export function reply(frame: ServerFrame | EncryptedFrame): WsProxyResult {
  return { statusCode: 200, body: JSON.stringify(frame) };
}

/** The one place where an error in `$default` becomes an error frame; unknown errors are logged once. */
export function errorReply(err: unknown, audit: Audit, event: WsProxyEvent, id?: RequestId): WsProxyResult {
  if (!isAppError(err) || err.code === 'internal' || err.code === 'unavailable') {
    audit('error', 'error', {
      route: event.requestContext.routeKey,
      connectionId: event.requestContext.connectionId,
      reason: isAppError(err) ? err.code : 'unhandled',
      errorName: ((isAppError(err) ? err.cause : err) as Error | undefined)?.name,
    });
  }
  return reply(errorFrame(err, id));
}

/** The authorizer context, flattened for API Gateway (strings, numbers and booleans only). */
export function authorizerContext(claims: {
  sub: string;
  username: string;
  roles: readonly string[];
  jti: string;
  sid: string;
  iat: number;
  exp: number;
}): Record<string, string | number> {
  return {
    sub: claims.sub,
    username: claims.username,
    roles: claims.roles.join(','),
    jti: claims.jti,
    sid: claims.sid,
    iat: claims.iat,
    exp: claims.exp,
  };
}

/** Reads back the frozen authorizer context of a later event (API Gateway may hand numbers back as strings). */
export function identityOf(event: WsProxyEvent): {
  connectionId: string;
  sub: string;
  username: string;
  roles: string[];
  jti: string;
  sid: string;
  iat: number;
  exp: number;
} {
  const a = (event.requestContext.authorizer ?? {}) as Record<string, unknown>;
  const text = (k: string) =>
    typeof a[k] === 'string' ? (a[k] as string) : typeof a[k] === 'number' ? String(a[k]) : '';
  const sub = text('sub');
  const username = text('username');
  if (!sub || !username) throw new Error('the authorizer context is missing');
  return {
    connectionId: event.requestContext.connectionId,
    sub,
    username,
    roles: text('roles').split(',').filter(Boolean),
    jti: text('jti'),
    sid: text('sid'),
    iat: Number(text('iat')) || 0,
    exp: Number(text('exp')) || 0,
  };
}
