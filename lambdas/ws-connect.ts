import { admitSocket } from './core/admission.ts';
import type { Deps } from './core/deps.ts';
import { identityOf, offeredProtocols, sourceIp } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `$connect`: admits the socket (core/admission.ts: a slot of the user's, stale holders
 * reclaimed, 403 when all are held) and answers the `jwt` subprotocol when the client
 * offered it (never the token).
 */
export function makeConnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const admitted = await admitSocket(deps, {
      ...identityOf(event),
      ip: sourceIp(event),
      connectedAt: event.requestContext.connectedAt ?? deps.clock.now(),
    });
    if (!admitted) return { statusCode: 403 };
    const protocol = offeredProtocols(event).includes('jwt') ? 'jwt' : undefined;
    return { statusCode: 200, ...(protocol ? { headers: { 'Sec-WebSocket-Protocol': protocol } } : {}) };
  };
}

export const handler = lambdaEntry(makeConnectHandler);
