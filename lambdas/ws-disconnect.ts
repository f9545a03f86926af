import type { Deps } from './core/deps.ts';
import { forgetSocket } from './core/sockets.ts';
import { identityOf } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/**
 * `$disconnect`: forgets the socket (its row, memberships and slot) and tells each room. API
 * Gateway delivers it on a best-effort basis, so the sweeper and TTL clean up too.
 */
export function makeDisconnectHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const id = identityOf(event);
    await forgetSocket(deps, id.connectionId);
    const code = event.requestContext.disconnectStatusCode;
    deps.audit('info', 'ws.disconnect', {
      username: id.username,
      sub: id.sub,
      connectionId: id.connectionId,
      reason: code === undefined ? undefined : `code ${code}`,
    });
    return { statusCode: 200 };
  };
}

export const handler = lambdaEntry(makeDisconnectHandler);
