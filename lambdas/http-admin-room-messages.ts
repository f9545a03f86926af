import { publishToRoom } from './core/admin.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `POST /admin/rooms/{room}/messages {text}` (role admin or publisher) -> `202`. */
export function makeRoomMessagesHandler(deps: Deps) {
  return roleRoute(deps, ['admin', 'publisher'], async (req, caller) =>
    json(202, await publishToRoom(deps, caller, req.pathParameters.room, req.body())),
  );
}

export const handler = lambdaEntry(makeRoomMessagesHandler);
