import type { Deps } from './core/deps.ts';
import { authorizeHandshake } from './core/handshake.ts';
import { authorizerContext, policy, unauthorized } from './edge/ws.ts';
import { handshakeOf } from './edge/ws-authorizer.ts';
import type { AuthorizerResult, WsAuthorizerEvent } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * The `$connect` REQUEST authorizer. A missing, bad, expired or revoked token throws
 * `Unauthorized` (API Gateway answers 401); a foreign Origin, a block or a missing
 * `user` role gets a Deny policy (403); a store failure throws anything else (500):
 * never an Allow without a verified token.
 */
export function makeAuthorizerHandler(deps: Deps) {
  return async (event: WsAuthorizerEvent): Promise<AuthorizerResult> => {
    const outcome = await authorizeHandshake(deps, handshakeOf(event)).catch((err: unknown) => {
      deps.audit('error', 'ws.denied', { reason: 'store_unavailable', errorName: (err as Error).name });
      throw new Error('authorizer unavailable');
    });
    if (outcome.allow) return policy('Allow', event, outcome.claims.sub, authorizerContext(outcome.claims));
    if (outcome.status === 401) throw unauthorized();
    return policy('Deny', event, 'anonymous');
  };
}

export const handler = lambdaEntry(makeAuthorizerHandler);
