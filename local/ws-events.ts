import { randomBytes } from 'node:crypto';
import type {
  WsAuthorizerContext,
  WsAuthorizerEvent,
  WsIdentity,
  WsProxyEvent,
  WsRequestContext,
} from '../lambdas/edge/ws-types.ts';
import { formatRequestTime } from './aws-time.ts';

// The event shapes are the handlers' own (lambdas/edge/ws-types.ts): the gateway builds
// exactly what the handlers read.
export type * from '../lambdas/edge/ws-types.ts';

/** What is known of a socket from its handshake; shared by all of its events. */
export interface ConnectionInfo {
  connectionId: string;
  connectedAt: number;
  identity: WsIdentity;
  domainName: string;
  stage: string;
  apiId: string;
}

/** The parts of the upgrade request that `$connect` and its authorizer see. */
export interface HandshakeRequest {
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  queryStringParameters?: Record<string, string>;
  multiValueQueryStringParameters?: Record<string, string[]>;
}

/**
 * An id in the shape API Gateway uses for connection, request and message ids: 16 characters,
 * ending in `=`. The base64url alphabet keeps it usable in the `@connections` path.
 */
export function newAwsId(): string {
  return `${randomBytes(11).toString('base64url')}=`;
}

/** An `X-Amzn-Trace-Id` value in the X-Ray format. */
export function newTraceId(now: number): string {
  const seconds = Math.floor(now / 1000)
    .toString(16)
    .padStart(8, '0');
  return `Root=1-${seconds}-${randomBytes(12).toString('hex')}`;
}

/**
 * Headers keyed by the name as the client sent it. A name repeated in another casing joins the
 * first spelling; `headers` keeps the last value, as in API Gateway's proxy events.
 */
export function parseRawHeaders(
  rawHeaders: readonly string[],
): Pick<HandshakeRequest, 'headers' | 'multiValueHeaders'> {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  const spelling = new Map<string, string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const sent = rawHeaders[i] as string;
    const value = rawHeaders[i + 1] as string;
    const lower = sent.toLowerCase();
    const name = spelling.get(lower) ?? sent;
    spelling.set(lower, name);
    headers[name] = value;
    const values = multiValueHeaders[name] ?? [];
    values.push(value);
    multiValueHeaders[name] = values;
  }
  return { headers, multiValueHeaders };
}

/** Query parameters of a request URL, absent (not empty) when there are none, as on AWS. */
export function parseQuery(
  url: string,
): Pick<HandshakeRequest, 'queryStringParameters' | 'multiValueQueryStringParameters'> {
  const q = url.indexOf('?');
  if (q < 0 || q === url.length - 1) return {};
  const params = new URLSearchParams(url.slice(q + 1));
  const single: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (const [key, value] of params) {
    single[key] = value;
    const values = multi[key] ?? [];
    values.push(value);
    multi[key] = values;
  }
  if (Object.keys(single).length === 0) return {};
  return { queryStringParameters: single, multiValueQueryStringParameters: multi };
}

/** Case-insensitive header lookup (names arrive in any casing). */
export function findHeader(headers: Record<string, unknown> | undefined, name: string): unknown {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === wanted) return headers[key];
  }
  return undefined;
}

/**
 * Adds the headers API Gateway adds in front of the integration. A client-sent
 * `X-Forwarded-For` is kept, with the peer's address appended, as a proxy does.
 */
export function addForwardingHeaders(
  request: HandshakeRequest,
  sourceIp: string,
  port: number,
  now: number,
): HandshakeRequest {
  const headers = { ...request.headers };
  const multiValueHeaders = { ...request.multiValueHeaders };
  const set = (name: string, value: string) => {
    const existing = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
    const key = existing ?? name;
    headers[key] = value;
    multiValueHeaders[key] = [value];
  };
  const forwarded = findHeader(headers, 'X-Forwarded-For');
  set(
    'X-Forwarded-For',
    typeof forwarded === 'string' && forwarded !== '' ? `${forwarded}, ${sourceIp}` : sourceIp,
  );
  set('X-Forwarded-Port', String(port));
  set('X-Forwarded-Proto', 'http');
  set('X-Amzn-Trace-Id', newTraceId(now));
  return { ...request, headers, multiValueHeaders };
}

function requestContext(
  info: ConnectionInfo,
  routeKey: string,
  eventType: WsRequestContext['eventType'],
  requestId: string,
  now: number,
): WsRequestContext {
  return {
    routeKey,
    eventType,
    extendedRequestId: requestId,
    requestTime: formatRequestTime(now),
    messageDirection: 'IN',
    stage: info.stage,
    connectedAt: info.connectedAt,
    requestTimeEpoch: now,
    identity: { ...info.identity },
    requestId,
    domainName: info.domainName,
    connectionId: info.connectionId,
    apiId: info.apiId,
  };
}

export function connectMethodArn(apiId: string, stage: string): string {
  return `arn:aws:execute-api:local:000000000000:${apiId}/${stage}/$connect`;
}

export function buildAuthorizerEvent(
  info: ConnectionInfo,
  request: HandshakeRequest,
  stageVariables: Record<string, string>,
  requestId: string,
  now: number,
): WsAuthorizerEvent {
  return {
    type: 'REQUEST',
    methodArn: connectMethodArn(info.apiId, info.stage),
    headers: { ...request.headers },
    multiValueHeaders: cloneMulti(request.multiValueHeaders),
    ...queryPart(request),
    stageVariables: { ...stageVariables },
    requestContext: requestContext(info, '$connect', 'CONNECT', requestId, now),
  };
}

export function buildConnectEvent(
  info: ConnectionInfo,
  request: HandshakeRequest,
  stageVariables: Record<string, string>,
  authorizer: WsAuthorizerContext | undefined,
  requestId: string,
  now: number,
): WsProxyEvent {
  const context = requestContext(info, '$connect', 'CONNECT', requestId, now);
  if (authorizer) context.authorizer = authorizer;
  return {
    headers: { ...request.headers },
    multiValueHeaders: cloneMulti(request.multiValueHeaders),
    ...queryPart(request),
    ...stagePart(stageVariables),
    requestContext: context,
    isBase64Encoded: false,
  };
}

export function buildMessageEvent(
  info: ConnectionInfo,
  stageVariables: Record<string, string>,
  authorizer: WsAuthorizerContext | undefined,
  data: Buffer,
  isBinary: boolean,
  ids: { requestId: string; messageId: string },
  now: number,
): WsProxyEvent {
  const context = requestContext(info, '$default', 'MESSAGE', ids.requestId, now);
  context.messageId = ids.messageId;
  if (authorizer) context.authorizer = authorizer;
  return {
    ...stagePart(stageVariables),
    requestContext: context,
    body: isBinary ? data.toString('base64') : data.toString('utf8'),
    isBase64Encoded: isBinary,
  };
}

/**
 * The `$disconnect` event. Its headers are not the handshake's: published samples of real events
 * show only these four, with empty values.
 */
export function buildDisconnectEvent(
  info: ConnectionInfo,
  stageVariables: Record<string, string>,
  authorizer: WsAuthorizerContext | undefined,
  status: { code: number; reason: string },
  requestId: string,
  now: number,
): WsProxyEvent {
  const context = requestContext(info, '$disconnect', 'DISCONNECT', requestId, now);
  context.disconnectStatusCode = status.code;
  context.disconnectReason = status.reason;
  if (authorizer) context.authorizer = authorizer;
  const headers = { Host: info.domainName, 'x-api-key': '', 'X-Forwarded-For': '', 'x-restapi': '' };
  const multiValueHeaders = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]]));
  return {
    headers,
    multiValueHeaders,
    ...stagePart(stageVariables),
    requestContext: context,
    isBase64Encoded: false,
  };
}

function cloneMulti(multi: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(multi).map(([k, v]) => [k, [...v]]));
}

function queryPart(request: HandshakeRequest): Partial<HandshakeRequest> {
  if (!request.queryStringParameters || !request.multiValueQueryStringParameters) return {};
  return {
    queryStringParameters: { ...request.queryStringParameters },
    multiValueQueryStringParameters: cloneMulti(request.multiValueQueryStringParameters),
  };
}

function stagePart(stageVariables: Record<string, string>): { stageVariables?: Record<string, string> } {
  return Object.keys(stageVariables).length > 0 ? { stageVariables: { ...stageVariables } } : {};
}
