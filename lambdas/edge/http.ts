import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { Audit } from '../core/audit.ts';
import { AppError, type ErrorCode, isAppError } from '../core/errors.ts';
import { normalizeIp } from '../core/ip.ts';
import type { HttpErrorBody, HttpErrorCode } from '../core/wire.ts';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;

/** Handlers refuse larger bodies before parsing; no request of the API needs more. */
export const MAX_BODY_BYTES = 16 * 1024;

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  invalid_credentials: 401,
  invalid_token: 401,
  token_expired: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/** The code clients see (the spec's list, with `not_found` for 404s): the domain's own two collapse into these. */
function publicCode(code: ErrorCode): HttpErrorCode {
  switch (code) {
    case 'too_large':
      return 'invalid_request';
    case 'unavailable':
      return 'internal';
    default:
      return code;
  }
}

/** The body of every HTTP error. */
function errorBody(error: HttpErrorCode, message: string): HttpErrorBody {
  return { error, message };
}

/** Headers every response of the API carries, whatever the route or the outcome. */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
    body: JSON.stringify(body),
  };
}

export function noContent(): HttpResult {
  return { statusCode: 204 };
}

/**
 * Adds the security headers to a result. A route may set its own `cache-control` (the
 * JWKS is cacheable), never drop `nosniff`.
 */
export function withSecurityHeaders(result: HttpResult): HttpResult {
  const headers: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k.toLowerCase()] = v;
  return {
    ...result,
    headers: { ...SECURITY_HEADERS, ...headers, 'x-content-type-options': 'nosniff' },
  };
}

/**
 * A path that does not percent-decode (`%`, `%zz`, `%ff`, a cut-off UTF-8 sequence).
 * API Gateway may pass such a path through undecoded, so the edge refuses it itself.
 */
export function undecodablePath(event: HttpEvent): boolean {
  try {
    decodeURIComponent(event.rawPath ?? '');
    return false;
  } catch {
    return true;
  }
}

/**
 * The outer wrapper of every HTTP function: one place for the headers of every
 * response and the refusal of undecodable paths, before the route runs.
 */
export function httpFunction(
  handler: (event: HttpEvent) => Promise<HttpResult>,
): (event: HttpEvent) => Promise<HttpResult> {
  return async (event) => {
    if (undecodablePath(event)) {
      return withSecurityHeaders(
        json(400, errorBody('invalid_request', 'the path is not valid percent-encoding')),
      );
    }
    return withSecurityHeaders(await handler(event));
  };
}

/** The one place where an error becomes an HTTP status and an error body. */
export function errorResult(err: unknown, audit: Audit, route: string, ip?: string): HttpResult {
  if (!isAppError(err)) {
    // Log the cause once, by name only; the client gets a generic body, never a stack.
    audit('error', 'error', {
      route,
      reason: 'unhandled',
      errorName: (err as Error | undefined)?.name ?? typeof err,
    });
    return json(500, errorBody('internal', 'internal error'));
  }
  if (err.code === 'unavailable' || err.code === 'internal') {
    const causeName = (err.cause as Error | undefined)?.name;
    audit('error', 'error', { route, reason: err.code, errorName: causeName });
  }
  if (err.code === 'invalid_token' || err.code === 'token_expired' || err.code === 'forbidden') {
    // Refused tokens and roles on HTTP routes, for the operators' "denials by reason" (logins log their own events).
    audit('warn', 'auth.denied', { route, reason: err.code, ip });
  }
  const status = STATUS[err.code];
  const headers: Record<string, string> = {};
  if (err.code === 'rate_limited') headers['retry-after'] = String(err.retryAfterS ?? 1);
  if (err.code === 'invalid_token' || err.code === 'token_expired') {
    headers['www-authenticate'] =
      `Bearer error="invalid_token", error_description="${err.code === 'token_expired' ? 'expired' : 'invalid'}"`;
  }
  return json(status, errorBody(publicCode(err.code), err.message), headers);
}

/** A request as the domain sees it. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly pathParameters: Readonly<Record<string, string | undefined>>;
  readonly ip: string | undefined;
  /** The JSON object body; throws `invalid_request` / `too_large` when it is not one. */
  body(): Record<string, unknown>;
}

export function toRequest(event: HttpEvent): HttpRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) headers[k.toLowerCase()] = v;
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    headers,
    pathParameters: event.pathParameters ?? {},
    ip: normalizeIp(event.requestContext.http.sourceIp),
    body: () => parseJsonBody(event),
  };
}

function parseJsonBody(event: HttpEvent): Record<string, unknown> {
  const raw = event.body ?? '';
  const text = event.isBase64Encoded ? Buffer.from(raw, 'base64').toString('utf8') : raw;
  if (Buffer.byteLength(text) > MAX_BODY_BYTES)
    throw new AppError('too_large', `the body is over ${MAX_BODY_BYTES} bytes`);
  if (text.trim() === '') throw new AppError('invalid_request', 'a JSON object body is required');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AppError('invalid_request', 'the body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new AppError('invalid_request', 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Wraps a route: builds the request, runs it, and maps every error through
 * `errorResult`, which labels its audit lines with the event's route key (`POST /auth/login`).
 * The route returns a result; it never sees the raw event.
 */
export function httpRoute(
  audit: Audit,
  run: (req: HttpRequest) => Promise<HttpResult>,
): (event: HttpEvent) => Promise<HttpResult> {
  return httpFunction(async (event) => {
    try {
      return await run(toRequest(event));
    } catch (err) {
      return errorResult(err, audit, event.routeKey, normalizeIp(event.requestContext.http.sourceIp));
    }
  });
}
