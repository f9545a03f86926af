import type { WsAuthorizerContext } from '../lambdas/edge/ws-types.ts';
import { findHeader, type HandshakeRequest } from './ws-events.ts';

/** API Gateway's limit on an authorizer's `context`, serialized. */
export const MAX_AUTHORIZER_CONTEXT_BYTES = 8 * 1024;

export type IdentitySource = { kind: 'header' | 'querystring'; name: string };

/**
 * Parses `route.request.header.X` and `route.request.querystring.x`, the two identity source
 * forms a WebSocket REQUEST authorizer takes from the request itself.
 */
export function parseIdentitySources(sources: readonly string[]): IdentitySource[] {
  return sources.map((source) => {
    const match = /^route\.request\.(header|querystring)\.(.+)$/.exec(source);
    if (!match?.[1] || !match[2]) {
      throw new Error(`unsupported identity source "${source}"`);
    }
    return { kind: match[1] as IdentitySource['kind'], name: match[2] };
  });
}

/**
 * True when every source is present and non-empty. API Gateway ANDs the sources and refuses with
 * 401 before invoking the authorizer when one is missing.
 */
export function hasIdentity(sources: readonly IdentitySource[], request: HandshakeRequest): boolean {
  return sources.every((source) => {
    const value =
      source.kind === 'header'
        ? findHeader(request.headers, source.name)
        : request.queryStringParameters?.[source.name];
    return typeof value === 'string' && value !== '';
  });
}

export type AuthorizerVerdict =
  | { outcome: 'allow'; context: WsAuthorizerContext }
  | { outcome: 'deny' }
  | { outcome: 'invalid'; reason: string };

/**
 * Judges an authorizer's result as API Gateway does for `methodArn`: an explicit Deny wins, then
 * an Allow is required; a malformed result or context is an authorizer configuration error.
 */
export function judgeAuthorizerResult(result: unknown, methodArn: string): AuthorizerVerdict {
  if (!isObject(result)) return { outcome: 'invalid', reason: 'result is not an object' };
  const { principalId, policyDocument, context } = result;
  if (typeof principalId !== 'string') return { outcome: 'invalid', reason: 'principalId is not a string' };
  if (!isObject(policyDocument)) return { outcome: 'invalid', reason: 'policyDocument is not an object' };
  const raw = policyDocument.Statement;
  const statements = Array.isArray(raw) ? raw : [raw];
  if (raw === undefined || !statements.every(isObject)) {
    return { outcome: 'invalid', reason: 'policyDocument.Statement is malformed' };
  }
  const checked = checkContext(context);
  if ('reason' in checked) return { outcome: 'invalid', reason: checked.reason };

  let allowed = false;
  for (const statement of statements as Record<string, unknown>[]) {
    const effect = statement.Effect;
    if (effect !== 'Allow' && effect !== 'Deny') {
      return { outcome: 'invalid', reason: 'statement Effect is neither Allow nor Deny' };
    }
    if (!matchesAny(statement.Action, 'execute-api:Invoke', true)) continue;
    if (!matchesAny(statement.Resource, methodArn, false)) continue;
    if (effect === 'Deny') return { outcome: 'deny' };
    allowed = true;
  }
  if (!allowed) return { outcome: 'deny' };
  return { outcome: 'allow', context: Object.freeze({ ...checked.values, principalId }) };
}

function checkContext(context: unknown): { values: Record<string, string> } | { reason: string } {
  if (context === undefined || context === null) return { values: {} };
  if (!isObject(context)) return { reason: 'context is not an object' };
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(context)) {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      return { reason: `context value "${key}" is not a string, number or boolean` };
    }
    values[key] = String(value);
  }
  if (Buffer.byteLength(JSON.stringify(context)) > MAX_AUTHORIZER_CONTEXT_BYTES) {
    return { reason: 'context is larger than 8 KB' };
  }
  return { values };
}

function matchesAny(patterns: unknown, value: string, ignoreCase: boolean): boolean {
  const list = Array.isArray(patterns) ? patterns : [patterns];
  return list.some((p) => typeof p === 'string' && globMatch(p, value, ignoreCase));
}

/** IAM wildcards: `*` any run of characters, `?` one character. */
function globMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
