import { handleFrame } from './core/chat.ts';
import type { Deps } from './core/deps.ts';
import { peekId } from './core/protocol.ts';
import { errorReply, identityOf, reply } from './edge/ws.ts';
import type { WsProxyEvent, WsProxyResult } from './edge/ws-types.ts';
import { lambdaEntry } from './runtime.ts';

/** `$default`: every client frame. The reply goes back through the route response; errors become error frames and the socket stays open. */
export function makeDefaultHandler(deps: Deps) {
  return async (event: WsProxyEvent): Promise<WsProxyResult> => {
    const body = event.isBase64Encoded
      ? Buffer.from(event.body ?? '', 'base64').toString('utf8')
      : (event.body ?? '');
    try {
      const answer = await handleFrame(deps, identityOf(event), body);
      return answer ? reply(answer) : { statusCode: 200 };
    } catch (err) {
      return errorReply(err, deps.audit, event, peekId(body));
    }
  };
}

export const handler = lambdaEntry(makeDefaultHandler);
