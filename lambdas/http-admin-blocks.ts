import { listBlocks } from './core/access.ts';
import type { Deps } from './core/deps.ts';
import { roleRoute } from './edge/admin.ts';
import { json } from './edge/http.ts';
import { lambdaEntry } from './runtime.ts';

/** `GET /admin/blocks` (role admin): the user and IP blocks in force now. */
export function makeBlocksHandler(deps: Deps) {
  return roleRoute(deps, ['admin'], async () => json(200, { blocks: await listBlocks(deps) }));
}

export const handler = lambdaEntry(makeBlocksHandler);
