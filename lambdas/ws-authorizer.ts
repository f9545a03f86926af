import type { Deps } from './core/deps.ts';
import { authorizeHandshake, type Credential } from './core/handshake.ts';
import { BEARER } from './core/tokens.ts';
import {
  authorizerContext,
  headerValues,
  offeredProtocols,
  policy,
  queryValues,
  sourceIp,
  unauthorized,
} from './edge/ws.ts';
import type { AuthorizerResult, WsAuthorizerEvent } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/** The token, tried in the spec's order: subprotocol `jwt, <token>`, `?token=` or `?ticket=`, then `Authorization: Bearer`. */
export function credentialOf(event: WsAuthorizerEvent): Credential | undefined {
  const protocols = offeredProtocols(event);
  if (protocols.includes('jwt')) {
    const token = protocols.find((p) => p !== 'jwt');
    if (token) return { kind: 'protocol', token };
  }
  const tokens = queryValues(event, 'token');
  if (tokens.length > 0) return { kind: 'query', token: tokens.length === 1 ? (tokens[0] ?? '') : '' };
  const tickets = queryValues(event, 'ticket');
  if (tickets.length > 0) return { kind: 'ticket', ticket: tickets.length === 1 ? (tickets[0] ?? '') : '' };
  const auth = headerValues(event, 'authorization');
  const m = auth.length === 1 ? BEARER.exec(auth[0] ?? '') : null;
  if (auth.length > 0) return { kind: 'header', token: m?.[1] ?? '' };
  return undefined;
}

/**
 * The `$connect` REQUEST authorizer. A missing, bad, expired or revoked token throws
 * `Unauthorized` (API Gateway answers 401); a foreign Origin, a block or a missing
 * `user` role gets a Deny policy (403); a store failure throws anything else (500):
 * never an Allow without a verified token.
 */
export function makeAuthorizerHandler(deps: Deps) {
  return async (event: WsAuthorizerEvent): Promise<AuthorizerResult> => {
    const outcome = await authorizeHandshake(deps, {
      credential: credentialOf(event),
      origins: headerValues(event, 'origin').flatMap((v) => v.split(',').map((o) => o.trim())),
      ip: sourceIp(event),
      connectionId: event.requestContext.connectionId,
    }).catch((err: unknown) => {
      deps.audit('error', 'ws.denied', { reason: 'store_unavailable', errorName: (err as Error).name });
      throw new Error('authorizer unavailable');
    });
    if (outcome.allow) return policy('Allow', event, outcome.claims.sub, authorizerContext(outcome.claims));
    if (outcome.status === 401) throw unauthorized();
    return policy('Deny', event, 'anonymous');
  };
}

export const handler = lambdaEntry(makeAuthorizerHandler);
